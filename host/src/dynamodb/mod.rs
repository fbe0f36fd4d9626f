//! What the DynamoDB Streams source and the DynamoDB sink share: the
//! attribute-value <-> JSON mapping ([`attr`]), JSON read with exact number
//! text ([`json`]) and how an AWS client is configured from a connector's
//! settings ([`client`]).

pub mod attr;
pub mod client;
pub mod json;

/// The DynamoDB SDK the connectors are built on (its types appear in the
/// public API, for example items and stream records).
pub use aws_sdk_dynamodb;
/// The DynamoDB Streams SDK (stream records, for custom `StreamsApi`s).
pub use aws_sdk_dynamodbstreams;
