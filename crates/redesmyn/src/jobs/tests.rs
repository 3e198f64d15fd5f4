use super::*;

fn service() -> Arc<InferenceService> {
    crate::testing::service(vec![crate::testing::endpoint("/double")], None).0
}

async fn finished(jobs: &Jobs, id: &str) -> JobRow {
    loop {
        let row = jobs.get(id).await.unwrap();
        if !matches!(row.state, State::Queued | State::Running) {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn submission(model: &ServedModel, x: usize) -> Submission<'_> {
    Submission {
        model,
        format: Format::Records,
        version: None,
        params: vec![],
        body: format!(r#"[{{"x":{x}}}]"#).into_bytes(),
        request_id: format!("req-{x}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_through_the_model_and_keep_their_answers() {
    let dir = tempfile::tempdir().unwrap();
    let service = service();
    let jobs = Jobs::start(JobsConfig::new(dir.path()), Arc::clone(&service), &Handle::current()).unwrap();
    let model = service.resolve("double", None).unwrap();
    let mut ids = Vec::new();
    for x in 0..200 {
        ids.push(jobs.submit(submission(&model, x)).await.unwrap());
    }
    for (x, id) in ids.iter().enumerate() {
        let row = finished(&jobs, id).await;
        assert_eq!(row.state, State::Succeeded);
        let result: serde_json::Value = serde_json::from_slice(row.result.as_deref().unwrap()).unwrap();
        assert_eq!(result["predictions"][0].as_f64(), Some(2.0 * x as f64));
        assert_eq!(result["id"], format!("req-{x}"));
    }
    let bad = jobs.submit(Submission { body: br#"[{"x":"no"}]"#.to_vec(), ..submission(&model, 0) }).await;
    assert!(matches!(bad, Err(JobError::Request(RequestError::InvalidRecord(_)))));
    assert!(matches!(jobs.get("not-an-id").await, Err(JobError::MalformedId(_))));
    let unknown = uuid::Uuid::new_v4().to_string();
    assert!(matches!(jobs.get(&unknown).await, Err(JobError::NotFound(_))));
    assert!(matches!(jobs.cancel(&ids[0]).await, Err(JobError::NotCancellable(_, "succeeded"))));
    jobs.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_and_large_results_fail_their_job() {
    let dir = tempfile::tempdir().unwrap();
    let service = service();
    let config = JobsConfig { max_queued: 0, ..JobsConfig::new(dir.path()) };
    let jobs = Jobs::start(config, Arc::clone(&service), &Handle::current()).unwrap();
    let model = service.resolve("double", None).unwrap();
    let full = jobs.submit(submission(&model, 1)).await;
    assert!(matches!(full, Err(JobError::Request(RequestError::QueueFull { .. }))));
    jobs.stop(Duration::from_secs(5)).await;

    let config = JobsConfig { max_result_bytes: 10, ..JobsConfig::new(dir.path()) };
    let jobs = Jobs::start(config, Arc::clone(&service), &Handle::current()).unwrap();
    let id = jobs.submit(submission(&model, 1)).await.unwrap();
    let row = finished(&jobs, &id).await;
    assert_eq!(row.state, State::Failed);
    assert!(row.error.unwrap().contains("over the limit of 10 bytes"));
    jobs.stop(Duration::from_secs(5)).await;
}
