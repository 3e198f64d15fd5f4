//! The in-process door: `predict()`, streams and file scoring through the
//! model of an endpoint path, with the same decoding, queue, batching and
//! handler as a request over HTTP.

use std::sync::Arc;

use super::{Prediction, RunningServer};
use crate::error::RequestError;
use crate::params::Params;
use crate::service::ServedModel;
use crate::stream::ChunkStream;

impl RunningServer {
    /// The model served at endpoint `path` now (`None` once removed).
    pub fn model_at(&self, path: &str) -> Option<Arc<ServedModel>> {
        let route = self.state.routes.iter().find(|r| r.path == path)?;
        self.service.resolve(&route.key.name, route.key.version.as_deref()).ok()
    }

    /// The model at `path`, or a not-found error naming `method`.
    fn model_for(&self, method: &str, path: &str) -> Result<Arc<ServedModel>, RequestError> {
        self.model_at(path).ok_or_else(|| RequestError::NotFound { method: method.into(), path: path.into() })
    }

    /// Predicts in-process through the model of the endpoint at `path`,
    /// with the same decoding, queue, batching and handler as HTTP requests.
    /// `body` is JSON records, as in a request.
    pub async fn predict(&self, path: &str, params: Params, body: &[u8]) -> Result<Prediction, RequestError> {
        self.model_for("predict", path)?.predict_records(&params, body).await
    }

    /// Scores a file through the model of the endpoint at `path`, with the
    /// same checks, queue, batching and handler as HTTP requests
    /// (see [`crate::score`]).
    pub async fn score(
        &self,
        path: &str,
        options: crate::score::ScoreOptions,
        progress: impl FnMut(&crate::score::Progress) + Send,
    ) -> Result<crate::score::Summary, crate::score::ScoreError> {
        let model = self.model_for("score", path)?;
        crate::score::score(&model, options, progress).await
    }

    /// Streams in-process from the streaming model of the endpoint at
    /// `path`, as [`Self::predict`]; `None` for an empty array of records.
    pub fn stream(&self, path: &str, params: Params, body: &[u8]) -> Result<Option<ChunkStream>, RequestError> {
        self.model_for("stream", path)?.stream_records(&params, body)
    }
}
