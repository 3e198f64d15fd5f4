//! The registry while serving and the management lifecycle, in process:
//! models added and removed under requests, traffic, deploys through a
//! deployer, and paths that never reach it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::json;
use tokio::runtime::Handle;

use super::*;
use crate::codec::records::decode_request;
use crate::handler::{Params, Predictions};
use crate::model::{Model, ModelRegistry};
use crate::service::{InferenceRequest, InferenceService};

/// A model answering `x * factor` after `delay`.
fn model(name: &str, version: Option<&str>, factor: f64, delay: Duration) -> Model {
    crate::testing::model(name, version, crate::testing::scaling(Some(factor), delay))
}

fn empty_service() -> Arc<InferenceService> {
    Arc::new(InferenceService::start(ModelRegistry::new(), |k| k.name.clone(), None, &Handle::current()))
}

async fn ask(service: &InferenceService, name: &str, version: Option<&str>) -> Result<f64, String> {
    let (model, _) = service.route(name, version, None).map_err(|e| e.to_string())?;
    let request = InferenceRequest { params: Params::default(), arrived: Instant::now(), client: None, trace: None };
    let answer = model.predict(request, |s| decode_request(s, br#"[{"x":1}]"#)).await.map_err(|e| e.to_string())?;
    let Predictions::Column(c) = answer.unwrap().predictions else { return Err("columns".into()) };
    Ok(c.f64().unwrap().get(0).unwrap())
}

#[tokio::test]
async fn models_join_and_leave_while_serving_and_requests_in_flight_are_answered() {
    let service = empty_service();
    service.add(model("m", Some("1"), 1.0, Duration::from_millis(200)), "m/1".into()).await.unwrap();
    assert_eq!(ask(&service, "m", None).await, Ok(1.0));
    service.add(model("m", Some("2"), 2.0, Duration::ZERO), "m/2".into()).await.unwrap();
    // Without traffic, the highest version answers unversioned requests, unless a default is set.
    assert_eq!(ask(&service, "m", None).await, Ok(2.0));
    service.set_default("m", Some("1")).unwrap();
    assert_eq!(ask(&service, "m", None).await, Ok(1.0));
    assert!(service.set_default("m", Some("9")).is_err());
    service.set_default("m", None).unwrap();
    assert_eq!(ask(&service, "m", None).await, Ok(2.0));
    service.set_default("m", Some("1")).unwrap();
    assert!(service.add(model("m", Some("2"), 2.0, Duration::ZERO), "m/2".into()).await.is_err());

    // A slow request on version 1 is under way when version 1 is removed.
    let slow = {
        let service = Arc::clone(&service);
        tokio::spawn(async move { ask(&service, "m", Some("1")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let removed = service.remove("m", Some("1"), Duration::from_secs(5)).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(slow.await.unwrap(), Ok(1.0), "the request in flight was answered");
    assert!(ask(&service, "m", Some("1")).await.unwrap_err().contains("no version '1'"));
    assert_eq!(ask(&service, "m", None).await, Ok(2.0));
    assert!(matches!(service.remove("m", Some("1"), Duration::ZERO).await, Err(ChangeError::NotFound(_))));
    service.remove("m", None, Duration::from_secs(1)).await.unwrap();
    assert!(service.group("m").is_none());
}

#[tokio::test]
async fn traffic_names_existing_versions_and_loses_removed_ones() {
    let service = empty_service();
    for (v, f) in [("1", 1.0), ("2", 2.0)] {
        service.add(model("m", Some(v), f, Duration::ZERO), format!("m/{v}")).await.unwrap();
    }
    let weights = |pairs: &[(&str, f64)]| pairs.iter().map(|(v, w)| (v.to_string(), *w)).collect::<BTreeMap<_, _>>();
    assert!(matches!(service.set_traffic("m", Some(weights(&[("3", 1.0)]))), Err(ChangeError::Traffic(_))));
    assert!(matches!(service.set_traffic("m", Some(weights(&[("1", -1.0)]))), Err(ChangeError::Traffic(_))));
    assert!(matches!(service.set_traffic("x", Some(weights(&[("1", 1.0)]))), Err(ChangeError::NotFound(_))));
    service.set_traffic("m", Some(weights(&[("1", 1.0), ("2", 0.0)]))).unwrap();
    for _ in 0..20 {
        assert_eq!(ask(&service, "m", None).await, Ok(1.0));
    }
    let sticky = |key: &str| service.route("m", None, Some(key)).unwrap().0.key().version.clone();
    service.set_traffic("m", Some(weights(&[("1", 0.5), ("2", 0.5)]))).unwrap();
    let first = sticky("user-7");
    assert!((0..50).all(|_| sticky("user-7") == first));
    service.remove("m", Some("1"), Duration::from_secs(1)).await.unwrap();
    assert_eq!(service.group("m").unwrap().traffic.unwrap().weights().keys().collect::<Vec<_>>(), ["2"]);
    assert_eq!(ask(&service, "m", None).await, Ok(2.0));
}

/// Adds a `x * version` model per deploy; counts calls and changes.
struct Fake {
    service: Arc<InferenceService>,
    deploys: AtomicUsize,
    changes: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Deployer for Fake {
    fn deploy(&self, spec: DeploySpec) -> BoxFuture<'static, Result<(), String>> {
        self.deploys.fetch_add(1, Ordering::SeqCst);
        let service = Arc::clone(&self.service);
        Box::pin(async move {
            if spec.runtime.as_deref() == Some("broken") {
                return Err("load raised ValueError".into());
            }
            let version = spec.version.clone().unwrap_or_default();
            let factor: f64 = version.parse().unwrap_or(1.0);
            let m = model(&spec.name, spec.version.as_deref(), factor, Duration::ZERO);
            service.add(m, spec.name.clone()).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }

    fn changed(&self, change: Change) -> BoxFuture<'static, Result<(), String>> {
        self.changes.lock().unwrap().push(serde_json::to_value(&change).unwrap()["kind"].as_str().unwrap().into());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn deploys_go_through_the_deployer_only_for_paths_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.joblib"), b"x").unwrap();
    std::fs::write(dir.path().join("outside.joblib"), b"x").unwrap();
    let service = empty_service();
    let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fake =
        Arc::new(Fake { service: Arc::clone(&service), deploys: AtomicUsize::new(0), changes: Arc::clone(&changes) });
    let config = ManagementConfig { token: "t".into(), host: None, port: None, root: Some(root.clone()) };
    let management = Management::new(
        config,
        Arc::clone(&service),
        Some(Arc::clone(&fake) as Arc<dyn Deployer>),
        Duration::from_secs(1),
    );
    let request = |name: &str, path: &str, version: Option<&str>, runtime: &str| DeployRequest {
        name: Some(name.into()),
        runtime: Some(runtime.into()),
        path: Some(path.into()),
        version: version.map(Into::into),
        ..Default::default()
    };

    for bad in ["../outside.joblib", "%2e%2e%2foutside.joblib", dir.path().join("outside.joblib").to_str().unwrap()] {
        let err = management.deploy(request("iris", bad, None, "sklearn")).await.unwrap_err();
        assert!(matches!(err, ManagementError::Path(_)), "{bad}: {err}");
    }
    assert!(matches!(
        management.deploy(request("../x", "a.joblib", None, "sklearn")).await,
        Err(ManagementError::Invalid(_))
    ));
    assert_eq!(fake.deploys.load(Ordering::SeqCst), 0, "nothing reached the deployer");

    let view = management.deploy(request("iris", "a.joblib", None, "sklearn")).await.unwrap();
    assert_eq!(view["versions"][0]["version"], json!("1"));
    assert_eq!(view["versions"][0]["state"], json!("ready"));
    assert!(matches!(
        management.deploy(request("iris", "a.joblib", None, "sklearn")).await,
        Err(ManagementError::Conflict(_))
    ));
    let failed = management.deploy(request("iris", "a.joblib", Some("3"), "broken")).await.unwrap_err();
    assert!(matches!(failed, ManagementError::Load(..)));
    let view = management.view("iris").unwrap();
    let states: Vec<_> = view["versions"].as_array().unwrap().iter().map(|v| v["state"].clone()).collect();
    assert_eq!(states, [json!("ready"), json!("failed")]);

    // A new version takes its model's runtime when none is given.
    let mut v2 = request("iris", "a.joblib", Some("2"), "sklearn");
    v2.runtime = None;
    management.deploy(v2).await.unwrap();
    management.set_traffic("iris", Some([("1".to_string(), 0.9), ("2".to_string(), 0.1)].into())).await.unwrap();
    assert_eq!(management.view("iris").unwrap()["traffic"], json!({"1": 0.9, "2": 0.1}));
    management.remove("iris", Some("1")).await.unwrap();
    assert_eq!(ask(&service, "iris", None).await, Ok(2.0));
    assert_eq!(*changes.lock().unwrap(), ["deployed", "deployed", "traffic", "removed"]);
    let index = management.index(false);
    assert!(index.as_array().unwrap().iter().any(|e| e["name"] == "iris" && e["state"] == "READY"));
}

#[tokio::test]
async fn a_version_being_removed_is_unloading_until_its_requests_are_answered() {
    let service = empty_service();
    service.add(model("slow", Some("1"), 1.0, Duration::from_millis(400)), "slow/1".into()).await.unwrap();
    let config = ManagementConfig { token: "t".into(), host: None, port: None, root: None };
    let management = Arc::new(Management::new(config, Arc::clone(&service), None, Duration::from_secs(5)));
    let slow = {
        let service = Arc::clone(&service);
        tokio::spawn(async move { ask(&service, "slow", Some("1")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let removal = {
        let management = Arc::clone(&management);
        tokio::spawn(async move { management.remove("slow", Some("1")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(management.view("slow").unwrap()["versions"][0]["state"], json!("unloading"));
    assert!(management.index(false).as_array().unwrap().iter().any(|e| e["state"] == "UNLOADING"));
    assert_eq!(slow.await.unwrap(), Ok(1.0));
    removal.await.unwrap().unwrap();
    assert!(management.view("slow").is_none());
}
