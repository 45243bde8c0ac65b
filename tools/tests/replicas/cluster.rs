//! A PostgreSQL cluster of the test's own, which it may stop and start: made with `initdb` in
//! a temporary directory, listening on a free loopback port, as `scripts/with-postgres` does.
//! Stopped (`-m immediate`) and removed on `Drop`.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
};

use tempfile::TempDir;

use crate::harness::{free_port, say};

pub struct PrivateCluster {
    bin: PathBuf,
    dir: TempDir,
    pub port: u16,
    /// initdb refuses to run as root: then every command runs as the `postgres` user.
    as_postgres: bool,
}

/// PostgreSQL's server binaries, where Debian's packages put them (15 preferred: the one
/// `scripts/with-postgres` installs).
pub fn server_bin_dir() -> Option<PathBuf> {
    let preferred = PathBuf::from("/usr/lib/postgresql/15/bin");
    if preferred.join("pg_ctl").exists() {
        return Some(preferred);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists() && bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PrivateCluster {
    /// initdb + start. Panics with the server's log if either fails.
    pub async fn start_new(bin: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("recloop-replicas-pg-")
            .tempdir_in("/tmp")
            .expect("a directory for the cluster");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the cluster directory");
        let as_postgres = is_root();
        if as_postgres {
            let status = std::process::Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("running chown");
            assert!(
                status.success(),
                "chown postgres {}: is there a postgres user? (scripts/with-postgres makes one)",
                dir.path().display()
            );
        }
        let cluster = Self {
            bin: bin.to_owned(),
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.data_dir();
        let out = cluster
            .command("initdb")
            .args(["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .await
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start().await;
        cluster
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log_file(&self) -> String {
        self.dir.path().join("server.log").display().to_string()
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            tokio::process::Command::new(path)
        };
        command.stdin(Stdio::null());
        command
    }

    /// `pg_ctl start` on the cluster's port, waiting until it accepts connections.
    pub async fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
             -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .args([
                "-D",
                &self.data_dir(),
                "-l",
                &self.log_file(),
                "-w",
                "-t",
                "60",
            ])
            .args(["-o", &options, "start"])
            .output()
            .await
            .expect("running pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log_file()).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m fast`: sessions are ended (their transactions rolled back), the server
    /// shuts down cleanly. Returns once it has.
    pub async fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .args([
                "-D",
                &self.data_dir(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ])
            .output()
            .await
            .expect("running pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The superuser URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        // Not running already (a failed start) is fine; anything else is worth a line.
        let stopped = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            say(&format!(
                "--- PostgreSQL log ---\n{}",
                std::fs::read_to_string(self.log_file()).unwrap_or_default()
            ));
        }
        if stopped.is_err() {
            say("could not run pg_ctl stop for the test's cluster");
        }
    }
}
