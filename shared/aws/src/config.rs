//! Typed configuration read once at cold start.

use std::collections::HashMap;

/// A configuration problem that stops the cold start, with the variable it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[cfg(feature = "ssm")]
    #[error("reading SSM parameter {name}: {source}")]
    Ssm {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A snapshot of the environment, so that config parsing is testable without touching the process env.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Env(std::env::vars().collect())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// This environment with one variable set.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.to_string(), value.to_string());
        self
    }

    pub fn optional(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// When abandoned carts are checked (`RECOVERY_IDLE_MINUTES`, `RECOVERY_STEP_HOURS`,
    /// `RECOVERY_MAX_MESSAGES_PER_CART`): the feature updater and the recovery sweep read the same.
    pub fn recovery_settings(
        &self,
    ) -> Result<checkout_domain::recovery::RecoverySettings, ConfigError> {
        checkout_domain::recovery::RecoverySettings::from_env(|name| {
            self.optional(name).map(str::to_string)
        })
        .map_err(|reason| ConfigError::Invalid {
            name: "RECOVERY_*",
            reason,
        })
    }

    /// Parses an optional variable, with a default.
    pub fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: format!("`{v}`: {e}"),
            }),
        }
    }
}

/// The shared SDK configuration: region, credentials and the `AWS_ENDPOINT_URL` override from the
/// environment, as everywhere in the AWS SDKs.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

#[cfg(feature = "ssm")]
/// Reads a secret: from SSM (decrypted) when `param_var` names a parameter, else from `value_var` directly.
/// The first is how it runs in AWS, the second how it runs locally.
pub async fn secret(
    env: &Env,
    sdk: &aws_config::SdkConfig,
    param_var: &'static str,
    value_var: &'static str,
) -> Result<String, ConfigError> {
    if let Some(name) = env.optional(param_var) {
        let ssm = aws_sdk_ssm::Client::new(sdk);
        let out = ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| ConfigError::Ssm {
                name: name.to_string(),
                source: Box::new(e),
            })?;
        return out
            .parameter()
            .and_then(|p| p.value())
            .map(str::to_string)
            .ok_or_else(|| ConfigError::Ssm {
                name: name.to_string(),
                source: "parameter has no value".into(),
            });
    }
    env.optional(value_var)
        .map(str::to_string)
        .ok_or(ConfigError::Invalid {
            name: value_var,
            reason: format!("set {param_var} (an SSM SecureString parameter name) or {value_var}"),
        })
}

/// SDK configuration for the local stack: every client goes to `endpoint` (moto on 127.0.0.1), with
/// static dummy credentials so that nothing looks for a real profile.
pub async fn local_sdk_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "local-stack",
        ))
        .load()
        .await
}
