//! What can go wrong reading an artifact from a store: the bottom of the
//! store modules (`store.rs`, `cloud.rs`, `download.rs` all name it).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no artifact at '{0}'")]
    NotFound(String),
    #[error("artifact '{key}' is outside the store")]
    Outside { key: String },
    /// The store refused the credentials, or none could be found.
    #[error("{0}")]
    Credentials(String),
    #[error("{0}")]
    Other(String),
}
