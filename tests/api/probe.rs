use crate::helpers::*;
use std::time::Instant;

async fn run(users: usize, items: usize, per: usize, f: usize, it: usize) {
    let app = TestApp::spawn_with(|c| { c.factors = f; c.iterations = it; }).await;
    app.post_events_ok(&serde_json::Value::Array(planted(users, items, per, 7))).await;
    let t = Instant::now();
    let m = app.retrain_wait().await;
    let t1 = t.elapsed();
    let bad = app.state.trainer.run_with(recloop::training::TrainingParams { als: recloop::model::AlsParams { factors: 1, iterations: 1, ..app.config.als_params() }, ..recloop::training::TrainingParams::from_config(&app.config) }).await.unwrap();
    let recloop::training::Outcome::Trained(bad) = bad else { panic!() };
    eprintln!("{users}x{items}x{per} f{f} it{it}: train {t1:?} ndcg {} pop {} ; bad {:?} {}", m["metrics"]["ndcg_at_10"], m["metrics"]["popularity_ndcg_at_10"], bad.status, bad.metrics["ndcg_at_10"]);
}

#[tokio::test]
async fn probe_timing() {
    run(60, 24, 15, 64, 15).await;
    run(80, 32, 12, 64, 15).await;
    run(48, 20, 12, 64, 15).await;
}
