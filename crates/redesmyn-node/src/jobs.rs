//! `NativeJobs`: a server's asynchronous jobs, as the jobs routes serve
//! them: scheduled on an endpoint, read back, cancelled while queued.

use std::collections::HashMap;
use std::sync::Arc;

use napi_derive::napi;

use crate::error::BindingError;
use crate::failure::ErrorReport;
use crate::shared::Shared;

/// A job request's answer: the job's JSON (`{id, state}` when scheduled,
/// its whole view when read), or why it failed.
#[napi(object)]
pub struct JobReport {
    /// JSON text, when the call succeeded.
    pub body: Option<String>,
    pub error: Option<ErrorReport>,
}

impl JobReport {
    fn ok(body: serde_json::Value) -> Self {
        JobReport { body: Some(body.to_string()), error: None }
    }

    fn failed(e: &redesmyn::jobs::JobError) -> Self {
        JobReport { body: None, error: Some(e.into()) }
    }
}

#[napi]
pub struct NativeJobs {
    shared: Arc<Shared>,
}

impl NativeJobs {
    pub fn new(shared: Arc<Shared>) -> Self {
        NativeJobs { shared }
    }

    fn jobs(&self) -> napi::Result<(Arc<redesmyn::RunningServer>, Arc<redesmyn::Jobs>)> {
        let running = self.shared.running()?;
        let jobs = running.jobs().cloned().ok_or_else(|| BindingError::failed("the server has no `jobs` option"))?;
        Ok((running, jobs))
    }
}

#[napi]
impl NativeJobs {
    /// Schedules a job on the endpoint at `path`, as `POST <path>/jobs` would.
    #[napi]
    pub async fn schedule(
        &self,
        path: String,
        params: HashMap<String, String>,
        records: String,
        request_id: Option<String>,
    ) -> napi::Result<JobReport> {
        let (running, jobs) = self.jobs()?;
        let model = running.model_at(&path).ok_or_else(|| BindingError::failed(format!("no endpoint at '{path}'")))?;
        let given = redesmyn::Params::new(params.into_iter().collect());
        let reply = async {
            let params = model.require_params(&given)?;
            let params = model.param_names().iter().map(|n| (n.clone(), params.get(n).unwrap_or_default().to_string()));
            let submission = redesmyn::jobs::Submission {
                model: &model,
                format: redesmyn::jobs::Format::Records,
                version: None,
                params: params.collect(),
                body: records.into_bytes(),
                request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            };
            jobs.submit(submission).await
        };
        Ok(match reply.await {
            Ok(id) => JobReport::ok(serde_json::json!({ "id": id, "state": "queued" })),
            Err(e) => JobReport::failed(&e),
        })
    }

    /// A job's state, result and telemetry, as `GET /jobs/{id}` answers.
    #[napi]
    pub async fn get(&self, id: String) -> napi::Result<JobReport> {
        let (_, jobs) = self.jobs()?;
        Ok(match jobs.get(&id).await {
            Ok(row) => JobReport::ok(redesmyn::jobs::view(&row)),
            Err(e) => JobReport::failed(&e),
        })
    }

    /// Cancels a queued job, as `DELETE /jobs/{id}`.
    #[napi]
    pub async fn cancel(&self, id: String) -> napi::Result<JobReport> {
        let (_, jobs) = self.jobs()?;
        Ok(match jobs.cancel(&id).await {
            Ok(()) => JobReport::ok(serde_json::json!({ "id": id, "state": "cancelled" })),
            Err(e) => JobReport::failed(&e),
        })
    }
}
