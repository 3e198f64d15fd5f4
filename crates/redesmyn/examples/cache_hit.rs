//! Measures what a model-cache hit costs a batch: `ModelCache::get` for a
//! model already in memory, averaged over many calls.
//!
//!     cargo run --release -p redesmyn --example cache_hit

use std::sync::Arc;
use std::time::{Duration, Instant};

use redesmyn::cache::{CacheConfig, FsStore, LoadedModel, ModelCache, PathTemplate};
use redesmyn::Params;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::temp_dir().join(format!("redesmyn-cache-hit-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("m/1")).expect("temp dir");
    std::fs::write(dir.join("m/1/model.bin"), b"model").expect("artifact");
    let loader = |_: std::path::PathBuf, _: Params| async { Ok::<LoadedModel, String>(Arc::new(vec![0u8; 1024])) };
    let cache = ModelCache::new(
        PathTemplate::parse("m/{id}/model.bin").expect("template"),
        &["id".to_string()],
        Arc::new(FsStore::new(&dir).expect("store")),
        Arc::new(loader),
        CacheConfig::default(),
    )
    .expect("cache");
    let params = Params::new(vec![("id".into(), "1".into())]);
    cache.get(&params).await.expect("first load");
    let calls = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(cache.get(&params).await.expect("hit"));
    }
    let per_call: Duration = started.elapsed() / calls;
    println!("cache hit: {:.0} ns per lookup ({calls} lookups)", per_call.as_nanos());
    let _ = std::fs::remove_dir_all(&dir);
}
