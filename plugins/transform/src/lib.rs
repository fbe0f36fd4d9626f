//! Weir example plugin `transform` (being written).
