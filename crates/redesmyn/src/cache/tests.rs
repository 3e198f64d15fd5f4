use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Weak;

use super::*;

/// A model that is the artifact's text; loads fail for text "broken".
#[derive(Clone)]
struct TextLoader {
    loads: Arc<AtomicUsize>,
    delay: Duration,
    alive: Arc<Mutex<Vec<Weak<dyn Any + Send + Sync>>>>,
}

impl TextLoader {
    fn new(delay: Duration) -> Self {
        TextLoader { loads: Arc::default(), delay, alive: Arc::default() }
    }
    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

impl Loader for TextLoader {
    fn load(&self, artifact: &Path, _params: &Params) -> BoxFuture<'static, Result<LoadedModel, String>> {
        let this = self.clone();
        let path = artifact.to_path_buf();
        Box::pin(async move {
            this.loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(this.delay).await;
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            if text == "broken" {
                return Err("ValueError: broken artifact".into());
            }
            let model: LoadedModel = Arc::new(text);
            this.alive.lock().unwrap().push(Arc::downgrade(&model));
            Ok(model)
        })
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    loader: TextLoader,
    cache: Arc<ModelCache>,
}

fn fixture(config: CacheConfig, delay: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let loader = TextLoader::new(delay);
    let template = PathTemplate::parse("m/{run}/{model}/model.txt").unwrap();
    let store = Arc::new(FsStore::new(dir.path()).unwrap());
    let order = vec!["run".to_string(), "model".to_string()];
    let cache = ModelCache::new(template, &order, store, Arc::new(loader.clone()), config).unwrap();
    Fixture { dir, loader, cache: Arc::new(cache) }
}

impl Fixture {
    fn write(&self, run: &str, model: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join("m").join(run).join(model).join("model.txt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn params(run: &str, model: &str) -> Params {
    Params::new(vec![("run".into(), run.into()), ("model".into(), model.into())])
}

fn text(model: &LoadedModel) -> String {
    model.downcast_ref::<String>().unwrap().clone()
}

#[tokio::test]
async fn loads_lazily_then_hits() {
    let f = fixture(CacheConfig::default(), Duration::ZERO);
    f.write("1", "1", "one");
    assert_eq!(f.loader.loads(), 0);
    assert_eq!(text(&f.cache.get(&params("1", "1")).await.unwrap()), "one");
    assert_eq!(text(&f.cache.get(&params("1", "1")).await.unwrap()), "one");
    assert_eq!(f.loader.loads(), 1);
    let stats = f.cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
    assert_eq!(f.cache.keys(), vec![params("1", "1")]);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_load() {
    let f = fixture(CacheConfig::default(), Duration::from_millis(50));
    f.write("1", "1", "one");
    let gets = (0..100).map(|_| {
        let cache = Arc::clone(&f.cache);
        tokio::spawn(async move { cache.get(&params("1", "1")).await.map(|m| text(&m)) })
    });
    for get in futures::future::join_all(gets).await {
        assert_eq!(get.unwrap().unwrap(), "one");
    }
    assert_eq!(f.loader.loads(), 1);
}

#[tokio::test]
async fn evicts_the_least_recently_used_and_releases_it() {
    let f = fixture(CacheConfig { max_size: 2, ..Default::default() }, Duration::ZERO);
    for m in ["a", "b", "c"] {
        f.write("1", m, m);
    }
    f.cache.get(&params("1", "a")).await.unwrap();
    f.cache.get(&params("1", "b")).await.unwrap();
    f.cache.sync().await;
    f.cache.get(&params("1", "a")).await.unwrap(); // a is now the most recent
    f.cache.sync().await;
    f.cache.get(&params("1", "c")).await.unwrap();
    f.cache.sync().await;
    assert_eq!(f.cache.keys(), vec![params("1", "a"), params("1", "c")]);
    assert_eq!(f.cache.stats().evictions, 1);
    let alive: Vec<bool> = f.loader.alive.lock().unwrap().iter().map(|w| w.upgrade().is_some()).collect();
    assert_eq!(alive, vec![true, false, true], "the evicted model b was released");
}

#[tokio::test]
async fn a_model_in_use_outlives_its_eviction() {
    let f = fixture(CacheConfig { max_size: 1, ..Default::default() }, Duration::ZERO);
    f.write("1", "a", "a");
    f.write("1", "b", "b");
    let held = f.cache.get(&params("1", "a")).await.unwrap();
    f.cache.get(&params("1", "b")).await.unwrap();
    f.cache.sync().await;
    assert_eq!(f.cache.keys(), vec![params("1", "b")]);
    assert_eq!(text(&held), "a");
    let weak = Arc::downgrade(&held);
    drop(held);
    // The cache's own maintenance may still hold the evicted entry for a
    // moment (seen once in a full run): let it finish first.
    f.cache.sync().await;
    assert!(weak.upgrade().is_none());
}

#[tokio::test]
async fn missing_artifacts_are_not_found() {
    let f = fixture(CacheConfig::default(), Duration::ZERO);
    let err = f.cache.get(&params("9", "9")).await.unwrap_err();
    assert_eq!(err, CacheError::NotFound { params: "run=9, model=9".into() });
    assert_eq!(f.loader.loads(), 0);
}

#[tokio::test]
async fn failed_loads_back_off_then_recover() {
    let config = CacheConfig { retry_backoff: Duration::from_millis(100), ..Default::default() };
    let f = fixture(config, Duration::ZERO);
    f.write("1", "1", "broken");
    let err = f.cache.get(&params("1", "1")).await.unwrap_err();
    assert!(matches!(&err, CacheError::Unavailable { message, .. } if message.contains("broken artifact")), "{err}");
    // Within the backoff, no new load is tried.
    assert!(matches!(f.cache.get(&params("1", "1")).await, Err(CacheError::Unavailable { .. })));
    assert_eq!(f.loader.loads(), 1);
    f.write("1", "1", "fixed");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(text(&f.cache.get(&params("1", "1")).await.unwrap()), "fixed");
    assert_eq!(f.cache.stats().load_failures, 1);
}

#[tokio::test]
async fn traversal_is_refused_before_any_file_is_touched() {
    let f = fixture(CacheConfig::default(), Duration::ZERO);
    // A file outside the model tree that traversal would reach.
    std::fs::write(f.dir.path().join("secret.txt"), "secret").unwrap();
    for (run, model) in
        [("..", "x"), ("1", ".."), ("a/b", "1"), ("1", "..\\.."), ("1", "%2e%2e"), ("1", "a\0b"), ("", "1")]
    {
        let err = f.cache.get(&params(run, model)).await.unwrap_err();
        assert!(matches!(err, CacheError::InvalidParam(_)), "{run:?}/{model:?}: {err}");
    }
    assert_eq!(f.loader.loads(), 0);
}

#[tokio::test]
async fn symlinks_cannot_escape_the_base() {
    let f = fixture(CacheConfig::default(), Duration::ZERO);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("model.txt"), "outside").unwrap();
    std::fs::create_dir_all(f.dir.path().join("m").join("1")).unwrap();
    std::os::unix::fs::symlink(outside.path(), f.dir.path().join("m").join("1").join("evil")).unwrap();
    let err = f.cache.get(&params("1", "evil")).await.unwrap_err();
    assert!(matches!(err, CacheError::NotFound { .. }), "{err}");
    assert_eq!(f.loader.loads(), 0);
}

#[tokio::test]
async fn patterns_refuse_values() {
    let config = CacheConfig { patterns: vec![("run".into(), r"^\d+$".into())], ..Default::default() };
    let f = fixture(config, Duration::ZERO);
    let err = f.cache.get(&params("abc", "1")).await.unwrap_err();
    assert_eq!(err.to_string(), r#"path parameter 'run' = "abc" does not match /^\d+$/"#);
}

#[tokio::test]
async fn refresh_reloads_changed_artifacts_and_keeps_old_models_on_failure() {
    let f = fixture(CacheConfig::default(), Duration::ZERO);
    f.write("1", "1", "v1");
    f.write("1", "2", "w1");
    f.cache.get(&params("1", "1")).await.unwrap();
    f.cache.get(&params("1", "2")).await.unwrap();
    f.cache.refresh(false).await;
    assert_eq!(f.loader.loads(), 2, "nothing changed, nothing reloaded");
    f.write("1", "1", "v2-longer");
    f.write("1", "2", "broken");
    f.cache.refresh(false).await;
    assert_eq!(text(&f.cache.get(&params("1", "1")).await.unwrap()), "v2-longer");
    assert_eq!(text(&f.cache.get(&params("1", "2")).await.unwrap()), "w1");
    let stats = f.cache.stats();
    assert_eq!((stats.refreshes, stats.refresh_failures), (1, 1));
    f.cache.refresh(true).await;
    assert_eq!(f.cache.stats().refreshes, 2, "forced refresh reloads unchanged models");
}

#[tokio::test]
async fn prefetch_loads_what_the_template_finds() {
    let f = fixture(CacheConfig::default(), Duration::ZERO);
    f.write("1", "1", "a");
    f.write("1", "2", "b");
    f.write("2", "1", "c");
    std::fs::write(f.dir.path().join("m").join("1").join("README"), "not a model").unwrap();
    assert_eq!(f.cache.prefetch().await.unwrap(), 3);
    assert_eq!(f.cache.keys(), vec![params("1", "1"), params("1", "2"), params("2", "1")]);
}

#[test]
fn template_must_match_path_params() {
    let dir = tempfile::tempdir().unwrap();
    let template = PathTemplate::parse("m/{run}/model.txt").unwrap();
    let store = Arc::new(FsStore::new(dir.path()).unwrap());
    let loader = TextLoader::new(Duration::ZERO);
    let result = ModelCache::new(template, &["model".to_string()], store, Arc::new(loader), CacheConfig::default());
    assert!(matches!(result, Err(SetupError::Template(TemplateError::Mismatch { .. }))));
    let template = PathTemplate::parse("m/{model}/model.txt").unwrap();
    let store = Arc::new(FsStore::new(dir.path()).unwrap());
    let config = CacheConfig { patterns: vec![("nope".into(), "x".into())], ..Default::default() };
    let result =
        ModelCache::new(template, &["model".to_string()], store, Arc::new(TextLoader::new(Duration::ZERO)), config);
    assert!(matches!(result, Err(SetupError::UnknownParam(_))));
}
