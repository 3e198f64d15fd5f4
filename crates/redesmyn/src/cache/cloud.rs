//! Object-store clients opened from URLs. The scheme picks the store (S3,
//! Google Cloud Storage, Azure Blob, plain HTTP); credentials come the way
//! each cloud's own SDKs find them (their environment variables and files),
//! and explicit options, named as `object_store` names them, win over those.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};

use super::store_error::StoreError;

/// Options of an object-store client, as `object_store` names them
/// (`aws_endpoint`, `google_service_account`, `azure_storage_account_key`,
/// `allow_http`, …).
pub type StoreOptions = Vec<(String, String)>;

/// The kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
    Http,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::S3 => "S3",
            Scheme::Gcs => "Google Cloud Storage",
            Scheme::Azure => "Azure Blob Storage",
            Scheme::Http => "HTTP",
        }
    }

    /// Whether objects can be written (HTTP is read-only here).
    pub fn writable(self) -> bool {
        self != Scheme::Http
    }

    /// Where credentials are looked for, in the order the client tries them.
    pub fn credential_sources(self) -> &'static str {
        match self {
            Scheme::S3 => {
                "the option aws_access_key_id (with aws_secret_access_key), the variables AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, \
                 AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, then the EC2 instance metadata service"
            }
            Scheme::Gcs => {
                "the options google_service_account / google_service_account_key / google_bearer_token, the \
                 variables GOOGLE_SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT_KEY, GOOGLE_APPLICATION_CREDENTIALS, \
                 the file ~/.config/gcloud/application_default_credentials.json, then the GCE metadata server"
            }
            Scheme::Azure => {
                "the options azure_storage_account_key / azure_storage_sas_key / azure_storage_token / \
                 azure_storage_client_secret, the variables AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, \
                 AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE (workload identity), \
                 then the managed identity endpoint"
            }
            Scheme::Http => "none (plain HTTP is read anonymously)",
        }
    }
}

/// An open client and the part of its URL below the bucket.
#[derive(Clone)]
pub struct Remote {
    pub store: Arc<dyn ObjectStore>,
    pub scheme: Scheme,
    /// The URL as given, without a trailing `/`.
    pub url: String,
    /// The path below the bucket or host, without leading or trailing `/`.
    pub prefix: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).field("scheme", &self.scheme).finish()
    }
}

/// Whether `location` is a URL an object store reads (rather than a local path).
pub fn is_url(location: &str) -> bool {
    url::Url::parse(location).ok().is_some_and(|u| scheme_of(&u).is_some())
}

fn scheme_of(url: &url::Url) -> Option<Scheme> {
    match ObjectStoreScheme::parse(url).ok()?.0 {
        ObjectStoreScheme::AmazonS3 => Some(Scheme::S3),
        ObjectStoreScheme::GoogleCloudStorage => Some(Scheme::Gcs),
        ObjectStoreScheme::MicrosoftAzure => Some(Scheme::Azure),
        ObjectStoreScheme::Http => Some(Scheme::Http),
        _ => None,
    }
}

/// An object's URL split into its folder's URL and its name
/// (`gs://bucket/a/model.joblib` → `gs://bucket/a`, `model.joblib`).
pub fn split_object_url(url: &str) -> Result<(&str, &str), StoreError> {
    url.trim_end_matches('/')
        .rsplit_once('/')
        .filter(|(dir, name)| !name.is_empty() && !dir.ends_with('/'))
        .ok_or_else(|| StoreError::Other(format!("'{url}' names no object (expected …/bucket/path/file.ext)")))
}

/// Requests are retried briefly: a model load or a poll that fails is
/// tried again by its own schedule, so one call should not hang for minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    }
}

/// A client for `url` (`s3://bucket/prefix`, `gs://…`, `az://container/…`,
/// `abfs://…`, `https://ACCOUNT.blob.core.windows.net/container/…`,
/// `http(s)://host/prefix`). An option no store of this kind knows is an error.
pub fn open(url: &str, options: &StoreOptions) -> Result<Remote, StoreError> {
    let parsed = url::Url::parse(url).map_err(|e| StoreError::Other(format!("'{url}' is not a URL: {e}")))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(StoreError::Other(format!("store URL '{url}' must not have a query or fragment")));
    }
    let Some(scheme) = scheme_of(&parsed) else {
        return Err(StoreError::Other(format!(
            "'{url}' is not a store URL: expected s3://, gs://, az://, abfs://, https://ACCOUNT.blob.core.windows.net/ or http(s)://"
        )));
    };
    let (_, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| StoreError::Other(format!("{url}: {e}")))?;
    let prefix = path.as_ref().trim_matches('/').to_string();
    let unknown =
        |key: &str| StoreError::Other(format!("'{key}' is not an option of {} stores (for '{url}')", scheme.name()));
    // Each option by the key type of its builder; an unknown name is an error.
    macro_rules! configured {
        ($builder:expr, $key:ty) => {{
            let mut b = $builder.with_retry(retry());
            for (k, v) in options {
                b = b.with_config(k.to_ascii_lowercase().parse::<$key>().map_err(|_| unknown(k))?, v);
            }
            b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }};
    }
    let built = match scheme {
        Scheme::S3 => configured!(AmazonS3Builder::from_env().with_url(url), AmazonS3ConfigKey),
        Scheme::Gcs => configured!(GoogleCloudStorageBuilder::from_env().with_url(url), GoogleConfigKey),
        Scheme::Azure => configured!(MicrosoftAzureBuilder::from_env().with_url(url), AzureConfigKey),
        // A plain http:// URL is what the user asked for.
        Scheme::Http => configured!(
            HttpBuilder::new()
                .with_url(&parsed[..url::Position::BeforePath])
                .with_config(ClientConfigKey::AllowHttp, (parsed.scheme() == "http").to_string()),
            ClientConfigKey
        ),
    };
    let store = built
        .map_err(|e| credential_error(scheme, url, &e).unwrap_or_else(|| StoreError::Other(format!("{url}: {e}"))))?;
    Ok(Remote { store, scheme, url: url.trim_end_matches('/').to_string(), prefix })
}

/// A store's refusal or a failure to obtain credentials, told with where
/// credentials were looked for; `None` for other errors.
fn credential_error(scheme: Scheme, url: &str, e: &object_store::Error) -> Option<StoreError> {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    // Listing errors carry the status in their text only.
    let refused =
        matches!(e, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
            || lower.contains("403 forbidden")
            || lower.contains("401 unauthorized");
    let obtaining = lower.contains("credential") || lower.contains("token") || lower.contains("metadata");
    (refused || obtaining).then(|| {
        StoreError::Credentials(format!(
            "{url}: {} has no usable credentials ({text}); looked for {}",
            scheme.name(),
            scheme.credential_sources()
        ))
    })
}

impl Remote {
    /// The object of `key`, a relative path below the prefix.
    pub fn location(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The URL of `key`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        if key.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{key}", self.url)
        }
    }

    /// A client error for `key` as a [`StoreError`]: missing objects and
    /// buckets name the URL, credential problems say where credentials
    /// were looked for.
    pub fn error(&self, key: &str, e: object_store::Error) -> StoreError {
        if let object_store::Error::NotFound { .. } = e {
            return StoreError::NotFound(self.url_of(key));
        }
        credential_error(self.scheme, &self.url_of(key), &e)
            .unwrap_or_else(|| StoreError::Other(format!("{}: {e}", self.url_of(key))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> StoreOptions {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn schemes_of_urls() {
        let anon = opts(&[("aws_skip_signature", "true")]);
        let s3 = open("s3://bucket/models/", &anon).unwrap();
        assert_eq!((s3.scheme, s3.prefix.as_str(), s3.url.as_str()), (Scheme::S3, "models", "s3://bucket/models"));
        let gcs = open("gs://bucket/a/b", &opts(&[("google_skip_signature", "true")])).unwrap();
        assert_eq!((gcs.scheme, gcs.prefix.as_str()), (Scheme::Gcs, "a/b"));
        let azure_opts = opts(&[("azure_storage_account_name", "acct"), ("azure_skip_signature", "true")]);
        for url in ["az://container/m", "abfs://container/m", "https://acct.blob.core.windows.net/container/m"] {
            let az = open(url, &azure_opts).unwrap();
            assert_eq!((az.scheme, az.prefix.as_str()), (Scheme::Azure, "m"), "{url}");
        }
        let http = open("http://127.0.0.1:1/files/models", &opts(&[("allow_http", "true")])).unwrap();
        assert_eq!((http.scheme, http.prefix.as_str()), (Scheme::Http, "files/models"));
        assert_eq!(http.location("m/1/model.bin").as_ref(), "files/models/m/1/model.bin");
        assert!(is_url("gs://b/x") && is_url("az://c/x") && is_url("https://h/x"));
        assert!(!is_url("./models") && !is_url("/abs/models") && !is_url("ftp://h/x"));
    }

    #[test]
    fn bad_urls_and_options_are_named() {
        let err = open("ftp://host/x", &opts(&[])).unwrap_err().to_string();
        assert!(err.contains("ftp://host/x") && err.contains("gs://"), "{err}");
        let err = open("gs://b/x", &opts(&[("aws_region", "x")])).unwrap_err().to_string();
        assert!(err.contains("'aws_region'") && err.contains("Google Cloud Storage"), "{err}");
        let err = open("s3://b/x?versionId=1", &opts(&[])).unwrap_err().to_string();
        assert!(err.contains("query"), "{err}");
    }
}
