//! Weir example plugin `router` (being written).
