//! The compose stack, checked without a Docker engine: docker-compose.yml, the Dockerfile and
//! deploy/ (nginx, Prometheus) must agree with each other and with the code — the variables
//! `src/config.rs` reads, the routes the router serves, the toolchain `Cargo.lock` needs.
//! When a compose client is installed, it must accept the file too.

mod files;

use std::{collections::BTreeSet, net::SocketAddr, process::Command};

use files::*;
use serde_yaml_ng::Value;

const REPLICAS: [&str; 2] = ["recloop-1", "recloop-2"];

struct Stack {
    compose: Value,
}

impl Stack {
    fn load() -> Self {
        Self {
            compose: yaml("docker-compose.yml"),
        }
    }

    fn service(&self, name: &str) -> &Value {
        get(&self.compose, "services")
            .and_then(|s| get(s, name))
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
    }

    /// The address the replicas listen on, the same for both.
    fn bind(&self) -> SocketAddr {
        let binds: BTreeSet<String> = REPLICAS
            .iter()
            .map(|r| {
                env_value(self.service(r), "RECLOOP_BIND").unwrap_or_else(|| {
                    panic!("{r}: no RECLOOP_BIND (the default is loopback only)")
                })
            })
            .collect();
        assert_eq!(binds.len(), 1, "the replicas listen differently: {binds:?}");
        let bind = binds.into_iter().next().unwrap_or_default();
        bind.parse()
            .unwrap_or_else(|e| panic!("RECLOOP_BIND {bind:?} is not an address: {e}"))
    }

    /// `host:port` of each replica as the other containers reach it.
    fn replica_targets(&self) -> BTreeSet<String> {
        let port = self.bind().port();
        REPLICAS.iter().map(|r| format!("{r}:{port}")).collect()
    }

    /// The file mounted at `target` in `service`, as a path in the repository.
    fn mounted_file(&self, service: &str, target: &str) -> String {
        let (source, _) = mounts(self.service(service))
            .into_iter()
            .find(|(_, t)| t == target)
            .unwrap_or_else(|| panic!("{service}: nothing mounted at {target}"));
        source.trim_start_matches("./").to_owned()
    }
}

/// Does the router serve `GET path`? (Read from `src/api/ops.rs`, where the operational
/// routes are.)
fn router_serves(path: &str) -> bool {
    read("src/api/ops.rs").contains(&format!(".route(\"{path}\""))
}

#[test]
fn the_stack_has_its_services() {
    let stack = Stack::load();
    for name in ["postgres", "recloop-1", "recloop-2", "lb", "prometheus"] {
        stack.service(name);
    }
    for replica in REPLICAS {
        let build = get(stack.service(replica), "build")
            .unwrap_or_else(|| panic!("{replica} is not built from the repository"));
        let context = match build {
            Value::String(s) => s.clone(),
            other => get(other, "context").map(str_of).unwrap_or_default(),
        };
        assert!(
            context == "." || context == "./",
            "{replica}: build context {context:?}"
        );
    }
    let image = |s: &str| {
        get(stack.service(s), "image")
            .map(str_of)
            .unwrap_or_default()
    };
    assert!(
        image("postgres").starts_with("postgres:15"),
        "{}",
        image("postgres")
    );
    assert!(image("lb").starts_with("nginx"), "{}", image("lb"));
    assert!(
        image("prometheus").starts_with("prom/prometheus"),
        "{}",
        image("prometheus")
    );
}

#[test]
fn the_replicas_use_only_settings_the_code_knows() {
    let stack = Stack::load();
    let mut known = config_env_names();
    // Read by tracing's EnvFilter, not by the Config.
    assert!(read("src/telemetry.rs").contains("RUST_LOG"));
    known.insert("RUST_LOG".to_owned());
    for replica in REPLICAS {
        for (name, _) in environment(stack.service(replica)) {
            assert!(
                known.contains(&name),
                "{replica} sets {name}, which recloop does not read; it reads: {known:?}"
            );
        }
    }
    assert_eq!(
        environment(stack.service("recloop-1")),
        environment(stack.service("recloop-2")),
        "the replicas are configured differently"
    );
}

#[test]
fn the_replicas_listen_where_the_health_check_looks() {
    let stack = Stack::load();
    let bind = stack.bind();
    assert!(
        bind.ip().is_unspecified(),
        "RECLOOP_BIND {bind}: other containers cannot reach it"
    );
    let expose: Vec<String> = dockerfile()
        .into_iter()
        .filter(|(i, _)| i == "EXPOSE")
        .map(|(_, rest)| rest)
        .collect();
    assert!(
        expose
            .iter()
            .any(|p| p.split_whitespace().any(|p| p == bind.port().to_string())),
        "the Dockerfile exposes {expose:?}, the replicas listen on {}",
        bind.port()
    );
    for replica in REPLICAS {
        let check = healthcheck(stack.service(replica))
            .unwrap_or_else(|| panic!("{replica} has no health check"));
        let url = check
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("{replica}: no URL in the health check {check:?}"));
        let path = format!(
            "/{}",
            url.trim_start_matches("http://")
                .split_once('/')
                .map_or("", |(_, p)| p)
        );
        let authority = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        assert!(
            authority.ends_with(&format!(":{}", bind.port())),
            "{replica}: the health check asks {authority}, the replica listens on {bind}"
        );
        assert!(
            path == "/readyz" || path == "/healthz",
            "{replica}: health check on {path}"
        );
        assert!(router_serves(&path), "the router does not serve {path}");
        // The runtime image has no HTTP client unless the Dockerfile installs it.
        let program = check.split_whitespace().next().unwrap_or_default();
        if program == "curl" || program == "wget" {
            let runtime_stage: Vec<(String, String)> = dockerfile()
                .into_iter()
                .rev()
                .take_while(|(i, _)| i != "FROM")
                .collect();
            assert!(
                runtime_stage.iter().any(|(i, rest)| i == "RUN"
                    && rest.contains("install")
                    && rest.contains(program)),
                "{replica}'s health check runs {program}, which the runtime image does not install"
            );
        }
        let depends = depends_on(stack.service(replica));
        assert!(
            depends.contains(&("postgres".to_owned(), "service_healthy".to_owned())),
            "{replica} must wait for a healthy postgres: {depends:?}"
        );
    }
}

#[test]
fn the_replicas_reach_the_postgres_service() {
    let stack = Stack::load();
    let postgres = stack.service("postgres");
    let wanted = |key: &str| env_value(postgres, key);
    for replica in REPLICAS {
        let url = env_value(stack.service(replica), "DATABASE_URL")
            .unwrap_or_else(|| panic!("{replica}: no DATABASE_URL (the default is SQLite)"));
        let url = parse_pg_url(&url);
        assert_eq!(url.host, "postgres", "{replica}: {url:?}");
        assert_eq!(url.port, 5432, "{replica}: {url:?}");
        // The image's defaults: user postgres, database = user, a password required.
        let user = wanted("POSTGRES_USER").unwrap_or_else(|| "postgres".to_owned());
        assert_eq!(url.user, user, "{replica}");
        assert_eq!(
            Some(url.password.clone()),
            wanted("POSTGRES_PASSWORD"),
            "{replica}"
        );
        assert_eq!(
            url.database,
            wanted("POSTGRES_DB").unwrap_or(user),
            "{replica}"
        );
    }
}

#[test]
fn postgres_keeps_its_data_in_a_named_volume_and_reports_health_with_pg_isready() {
    let stack = Stack::load();
    let postgres = stack.service("postgres");
    let (source, _) = mounts(postgres)
        .into_iter()
        .find(|(_, target)| target == "/var/lib/postgresql/data")
        .expect("nothing mounted at postgres's data directory");
    let volumes = get(&stack.compose, "volumes").expect("no top-level volumes");
    assert!(
        get(volumes, &source).is_some(),
        "postgres's data is in {source:?}, not a named volume"
    );
    let check = healthcheck(postgres).expect("postgres has no health check");
    assert!(check.contains("pg_isready"), "{check}");
    let user = env_value(postgres, "POSTGRES_USER").unwrap_or_else(|| "postgres".into());
    assert!(
        check.contains(&format!("-U {user}")),
        "pg_isready as another user: {check}"
    );
}

#[test]
fn nginx_balances_over_both_replicas() {
    let stack = Stack::load();
    let conf_path = stack.mounted_file("lb", "/etc/nginx/nginx.conf");
    let conf = parse_nginx(&read(&conf_path));

    let mut upstreams = Vec::new();
    Directive::find_all(&conf, "upstream", &mut upstreams);
    assert_eq!(upstreams.len(), 1, "{conf_path}: one upstream expected");
    let upstream = upstreams[0];
    let servers: BTreeSet<String> = upstream
        .block
        .iter()
        .filter(|d| d.name == "server")
        .map(|d| d.args[0].clone())
        .collect();
    assert_eq!(
        servers,
        stack.replica_targets(),
        "{conf_path}: upstream servers"
    );

    let mut passes = Vec::new();
    Directive::find_all(&conf, "proxy_pass", &mut passes);
    assert!(!passes.is_empty(), "{conf_path}: no proxy_pass");
    for pass in passes {
        assert_eq!(
            pass.args,
            [format!("http://{}", upstream.args[0])],
            "{conf_path}"
        );
    }

    let mut listens = Vec::new();
    Directive::find_all(&conf, "listen", &mut listens);
    let listen: u16 = listens[0].args[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a listen port");
    let published = published_ports(stack.service("lb"));
    assert!(
        published.iter().any(|&(_, container)| container == listen),
        "nginx listens on {listen}, lb publishes {published:?}"
    );

    // A body the service takes must pass the balancer (nginx's own default is 1 MB, less
    // than a full batch of 10,000 events).
    let mut sizes = Vec::new();
    Directive::find_all(&conf, "client_max_body_size", &mut sizes);
    let size = sizes
        .first()
        .map(|d| d.args[0].to_lowercase())
        .unwrap_or("1m".into());
    let (number, unit) = size.split_at(size.trim_end_matches(['k', 'm', 'g']).len());
    let factor = match unit {
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => 1,
    };
    let nginx_limit = number.parse::<u64>().expect("a size") * factor;
    let service_limit = env_value(stack.service("recloop-1"), "RECLOOP_MAX_BODY_BYTES")
        .map(|v| v.parse().expect("RECLOOP_MAX_BODY_BYTES"))
        .unwrap_or_else(|| config_default_number("RECLOOP_MAX_BODY_BYTES"));
    assert!(
        nginx_limit == 0 || nginx_limit >= service_limit,
        "nginx refuses bodies over {nginx_limit} bytes, the service takes {service_limit}"
    );

    let depends: BTreeSet<String> = depends_on(stack.service("lb"))
        .into_iter()
        .map(|d| d.0)
        .collect();
    for replica in REPLICAS {
        assert!(
            depends.contains(replica),
            "lb must start after {replica}: {depends:?}"
        );
    }
}

#[test]
fn prometheus_scrapes_both_replicas() {
    let stack = Stack::load();
    let path = stack.mounted_file("prometheus", "/etc/prometheus/prometheus.yml");
    let config = yaml(&path);
    let jobs = get(&config, "scrape_configs")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{path}: no scrape_configs"));
    let mut targets = BTreeSet::new();
    for job in jobs {
        let metrics_path = get(job, "metrics_path").map_or("/metrics".to_owned(), str_of);
        assert_eq!(metrics_path, "/metrics", "{path}");
        for group in get(job, "static_configs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            for target in get(group, "targets")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                targets.insert(str_of(target));
            }
        }
    }
    assert_eq!(targets, stack.replica_targets(), "{path}: scrape targets");
    assert!(
        router_serves("/metrics"),
        "the router does not serve /metrics"
    );
}

/// `rust:1.89-bookworm` → (1, 89).
fn rust_image_version(from: &str) -> Option<(u64, u64)> {
    let tag = from.split_whitespace().next()?.strip_prefix("rust:")?;
    let mut parts = tag.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The newest `rust-version` among the packages the `recloop` binary is built from, as
/// Cargo.lock pins them (normal dependencies, on Linux).
fn locked_rust_version() -> (u64, u64) {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(root())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve nodes");
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id);
    // The workspace member whose `recloop` binary the Dockerfile builds (tools/, not the root).
    let bin_package = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["name"] == "recloop"
                    && t["kind"]
                        .as_array()
                        .is_some_and(|k| k.contains(&"bin".into()))
            })
        })
        .and_then(|p| p["id"].as_str())
        .expect("a workspace package with the `recloop` binary");
    // Walk the normal (not dev, not build-only... build scripts count too) dependencies.
    let mut seen = BTreeSet::new();
    let mut stack = vec![bin_package.to_owned()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for dep in node(&id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let used = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if used {
                stack.push(dep["pkg"].as_str().expect("pkg").to_owned());
            }
        }
    }
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| seen.contains(id)))
        .filter_map(|p| {
            let v = p["rust_version"].as_str()?;
            let mut parts = v.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .max()
        .unwrap_or((1, 0))
}

#[test]
fn the_dockerfile_builds_in_two_stages_with_a_toolchain_new_enough() {
    let instructions = dockerfile();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, rest)| rest)
        .collect();
    assert!(froms.len() >= 2, "not a multi-stage build: {froms:?}");
    let build_stage = froms[0];
    let stage_name = build_stage
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("as"))
        .nth(1)
        .expect("the build stage is named (FROM ... AS build)");
    assert!(
        instructions
            .iter()
            .any(|(i, rest)| i == "COPY" && rest.starts_with(&format!("--from={stage_name} "))),
        "the runtime stage copies nothing from {stage_name}"
    );
    let image = rust_image_version(build_stage)
        .unwrap_or_else(|| panic!("the build stage is not a versioned rust image: {build_stage}"));
    let needed = locked_rust_version();
    assert!(
        image >= needed,
        "the Dockerfile builds with Rust {}.{}, Cargo.lock's dependencies need {}.{}",
        image.0,
        image.1,
        needed.0,
        needed.1
    );
    // Everything the build reads is copied in (Cargo.toml names benches/ as a bench target,
    // sqlx::migrate! embeds migrations/ at compile time, the binary is the tools/ crate's).
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "migrations",
        "benches",
        "tools/Cargo.toml",
        "tools/src",
    ] {
        assert!(
            instructions
                .iter()
                .any(|(i, rest)| i == "COPY" && rest.split_whitespace().any(|w| w == path)),
            "the Dockerfile does not copy {path}"
        );
    }
}

/// The compose client installed here, if any: Compose v2 (`docker compose`) or v1
/// (`docker-compose`). Both parse and check a file without talking to an engine.
fn compose_client() -> Option<Vec<&'static str>> {
    let works = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&["docker", "compose", "version"]) {
        Some(vec!["docker", "compose"])
    } else if works(&["docker-compose", "version"]) {
        Some(vec!["docker-compose"])
    } else {
        None
    }
}

#[test]
fn a_compose_client_accepts_the_file() {
    let Some(client) = compose_client() else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: neither `docker compose` nor `docker-compose` is installed\n",
        );
        return;
    };
    let out = Command::new(client[0])
        .args(&client[1..])
        .args(["-f", "docker-compose.yml", "config", "--quiet"])
        .current_dir(root())
        .output()
        .expect("running the compose client");
    assert!(
        out.status.success(),
        "{} config rejects docker-compose.yml:\n{}",
        client.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
