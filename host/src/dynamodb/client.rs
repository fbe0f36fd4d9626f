//! Building AWS SDK configuration from a connector's settings.
//!
//! Endpoint, region and credentials come from the standard AWS chain
//! (environment, profile, container/instance metadata); a connector may
//! override the endpoint (a local emulator, a VPC endpoint), the region,
//! and — for local emulators only — give static credentials.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Where and as whom a DynamoDB connector connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsConnection {
    /// Endpoint URL override (`http://127.0.0.1:15000`).
    pub endpoint: Option<String>,
    /// Region override (`us-east-1`).
    pub region: Option<String>,
    /// Static access key id; with `secret_access_key`, replaces the chain.
    pub access_key_id: Option<String>,
    /// Static secret access key.
    pub secret_access_key: Option<String>,
}

impl AwsConnection {
    /// Load the shared SDK configuration.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "weir-config",
            ));
        }
        loader.load().await
    }

    /// A complaint about the settings, if any (one static credential
    /// without the other).
    pub fn validate(&self) -> Result<(), String> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => Err("access_key_id is set but secret_access_key is not".into()),
            (None, Some(_)) => Err("secret_access_key is set but access_key_id is not".into()),
            _ => Ok(()),
        }
    }
}

/// The text of an SDK error, including the service's own message where
/// there is one (the `Display` of `SdkError` alone says only "service error").
pub fn error_text<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match (e.code(), e.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => DisplayErrorContext(err).to_string(),
            }
        }
        _ => DisplayErrorContext(err).to_string(),
    }
}
