//! The TypeScript side of the management API as a core [`Deployer`]: the
//! repository code plans a model from a runtime name and a file, builds its
//! endpoint and adds it to the running server (`NativeServer::add_model`);
//! changes are persisted there too (the repository's settings files).

use futures::future::BoxFuture;
use redesmyn::management::{Change, DeploySpec, Deployer};

use crate::error::Context;
use crate::js_callback::{JsCallback, JsFunction};

/// `(json) => Promise<DeployOutput>`; never rejects.
pub type DeployFn = JsFunction<String, DeployOutput, String>;

/// What the TypeScript side answers: nothing, or why it failed.
#[napi_derive::napi(object)]
pub struct DeployOutput {
    pub error: Option<String>,
}

pub struct JsDeployer {
    deploy: JsCallback<String, DeployOutput, String>,
    changed: JsCallback<String, DeployOutput, String>,
}

impl JsDeployer {
    pub fn new(deploy: DeployFn, changed: DeployFn) -> Self {
        JsDeployer { deploy: JsCallback::new(deploy), changed: JsCallback::new(changed) }
    }
}

async fn call(callback: JsCallback<String, DeployOutput, String>, json: String, name: &str) -> Result<(), String> {
    let output = callback.await_call(json).await.context(name).map_err(|e| e.to_string())?;
    output.error.map_or(Ok(()), Err)
}

impl Deployer for JsDeployer {
    fn deploy(&self, spec: DeploySpec) -> BoxFuture<'static, Result<(), String>> {
        let callback = self.deploy.clone();
        let json = serde_json::to_string(&spec).unwrap_or_default();
        Box::pin(async move { call(callback, json, "deployer").await })
    }

    fn changed(&self, change: Change) -> BoxFuture<'static, Result<(), String>> {
        let callback = self.changed.clone();
        let json = serde_json::to_string(&change).unwrap_or_default();
        Box::pin(async move { call(callback, json, "persistence").await })
    }
}
