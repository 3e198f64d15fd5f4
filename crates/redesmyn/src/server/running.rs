//! What a running server tells and takes besides requests: its ports, its
//! service, management and jobs, and models added while it serves.

use std::sync::Arc;

use super::RunningServer;
use crate::jobs::Jobs;
use crate::management::Management;
use crate::model::Built;
use crate::service::InferenceService;

impl RunningServer {
    pub fn port(&self) -> u16 {
        self.http.port
    }

    /// The bound gRPC port, when gRPC is on.
    pub fn grpc_port(&self) -> Option<u16> {
        self.grpc.as_ref().map(|g| g.port)
    }

    /// The service every door calls: models by name and version.
    pub fn service(&self) -> &Arc<InferenceService> {
        &self.service
    }

    /// The bound management port, when the management API has its own.
    pub fn management_port(&self) -> Option<u16> {
        self.management_http.as_ref().map(|m| m.port)
    }

    /// The management lifecycle, when the server has a `management` option.
    pub fn management(&self) -> Option<&Arc<Management>> {
        self.management.as_ref()
    }

    /// Adds a model while serving (see [`InferenceService::add`]); it is
    /// reached by name (V2, `POST /predictions/{name}[/versions/{v}]`). Its
    /// runtime's resources stop with the server (their counters are not in
    /// `/metrics`: its collectors are fixed at start).
    pub async fn add_model(&self, built: Built) -> Result<(), crate::service::ChangeError> {
        let model = built.endpoint.model;
        if let Some(resources) = built.resources {
            self.resources.lock().unwrap_or_else(|p| p.into_inner()).push(resources);
        }
        let label = match &model.version {
            Some(v) => format!("/predictions/{}/versions/{v}", model.name),
            None => format!("/predictions/{}", model.name),
        };
        self.service.add(model, label).await.map(|_| ())
    }

    /// The job queue, when the server has a `jobs` option.
    pub fn jobs(&self) -> Option<&Arc<Jobs>> {
        self.jobs.as_ref()
    }
}
