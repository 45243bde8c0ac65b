//! Hostile clients against the real connection loop (`recloop::server`, as `recloop serve`
//! runs it): slow or endless request heads and bodies are cut off and rate limiting answers
//! 429. SQLite only: none of this depends on the backend. Each test has its own server and
//! database. That a real `recloop serve` process never shows a key in its logs or answers is
//! tested with the executable, in `tools/tests/keys_in_logs.rs`.

mod rate_limit;
mod timeouts;

use std::{net::SocketAddr, time::Duration};

use recloop::{
    config::Config,
    server::{serve_connections, ServeOptions},
};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const API_KEY: &str = "hostile-api-key-3Wd8";
pub const ADMIN_KEY: &str = "hostile-admin-key-5Kq1";

/// A server on 127.0.0.1:0, stopped and removed on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<bool>,
    _dir: TempDir,
}

impl Server {
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default_for(format!(
            "sqlite://{}",
            dir.path().join("recloop.db").display()
        ));
        config.retrain_interval_secs = 0;
        config.retrain_after_events = 0;
        configure(&mut config);
        let options = ServeOptions {
            header_timeout: config.header_timeout(),
            grace: Duration::from_secs(5),
        };
        let app = recloop::build_app(config).await.expect("building the app");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve_connections(listener, app.router, options, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}
