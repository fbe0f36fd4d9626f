//! Building AWS SDK configuration from a connector's settings.
//!
//! Endpoint, region and credentials come from the AWS SDK's default chain
//! (`aws-config`): environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), the shared config and
//! credentials files (`AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`,
//! `AWS_CONFIG_FILE`; SSO and `credential_process` profiles included), web
//! identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as EKS sets
//! them), then the ECS container and EC2 instance roles. A connector may
//! override the endpoint (a local emulator, a VPC endpoint) and the region,
//! and give static credentials, which then replace the chain.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Declares the settings struct of a DynamoDB connector with the AWS
/// connection keys every one of them takes (`endpoint`, `region`,
/// `access_key_id`, `secret_access_key`) appended to its own fields, and
/// its `connection()`. The keys stay at the top of the connector's table
/// (not `serde(flatten)`, which would lose the `file:line:col` of a
/// mistake in them), and they are declared here once.
macro_rules! with_aws_connection {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($fields)*
            /// Endpoint URL override (a local emulator or a VPC endpoint),
            /// used for every AWS call of the connector; default: the
            /// standard AWS configuration.
            #[serde(default)]
            pub endpoint: Option<String>,
            /// Region override; default: the standard AWS configuration.
            #[serde(default)]
            pub region: Option<String>,
            /// Static access key id, for local emulators; default: the
            /// standard AWS credential chain.
            #[serde(default)]
            pub access_key_id: Option<String>,
            /// Static secret access key, with `access_key_id`.
            #[serde(default)]
            pub secret_access_key: Option<String>,
        }

        impl $name {
            /// The connection settings (checked by
            /// [`AwsConnection::validate`](crate::dynamodb::client::AwsConnection::validate)).
            pub fn connection(&self) -> $crate::dynamodb::client::AwsConnection {
                $crate::dynamodb::client::AwsConnection {
                    endpoint: self.endpoint.clone(),
                    region: self.region.clone(),
                    access_key_id: self.access_key_id.clone(),
                    secret_access_key: self.secret_access_key.clone(),
                }
            }
        }
    };
}
pub(crate) use with_aws_connection;

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

    /// Load the shared SDK configuration and make sure it yields
    /// credentials, so a connector without any fails at start with the
    /// chain's own explanation instead of on its first request.
    pub async fn load_checked(&self) -> Result<SdkConfig, String> {
        use aws_sdk_dynamodb::config::ProvideCredentials as _;
        let sdk = self.load().await;
        let Some(provider) = sdk.credentials_provider() else {
            return Err(NO_CREDENTIALS.to_string());
        };
        match provider.provide_credentials().await {
            Ok(_) => Ok(sdk),
            Err(e) => Err(format!(
                "{NO_CREDENTIALS} ({})",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )),
        }
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

/// What a connector without credentials says.
const NO_CREDENTIALS: &str = "no AWS credentials: set access_key_id and secret_access_key, or provide them through the AWS default chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE with a shared credentials file, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, a container or instance role)";

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
