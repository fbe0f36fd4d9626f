//! What the DynamoDB Streams source and the DynamoDB sink share: the
//! attribute-value <-> JSON mapping ([`attr`]) and how an AWS client is
//! configured from a connector's settings ([`client`]).

pub mod attr;
pub mod client;
