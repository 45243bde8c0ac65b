//! Reading the deployment files and the code they must agree with, as they are in the work tree.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde_yaml_ng::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A YAML file, with merge keys (`<<: *anchor`) applied as compose applies them.
pub fn yaml(path: &str) -> Value {
    let mut value: Value = serde_yaml_ng::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{path}: merge keys: {e}"));
    value
}

/// `value[key]` for a string key, None when absent.
pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping()?.get(Value::String(key.to_owned()))
}

pub fn str_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

/// A compose `environment`, either form (`KEY: value` or `- KEY=value`), as pairs.
pub fn environment(service: &Value) -> Vec<(String, String)> {
    match get(service, "environment") {
        None => Vec::new(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    str_of(k),
                    if v.is_null() {
                        String::new()
                    } else {
                        str_of(v)
                    },
                )
            })
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = str_of(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

pub fn env_value(service: &Value, key: &str) -> Option<String> {
    environment(service)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// A health check's `test` as one string (`CMD`/`CMD-SHELL` dropped).
pub fn healthcheck(service: &Value) -> Option<String> {
    let test = get(get(service, "healthcheck")?, "test")?;
    Some(match test {
        Value::String(s) => s.clone(),
        Value::Sequence(parts) => parts
            .iter()
            .map(str_of)
            .filter(|p| p != "CMD" && p != "CMD-SHELL")
            .collect::<Vec<_>>()
            .join(" "),
        other => panic!("healthcheck test: {other:?}"),
    })
}

/// The names a service depends on, with the condition each must reach.
pub fn depends_on(service: &Value) -> Vec<(String, String)> {
    match get(service, "depends_on") {
        None => Vec::new(),
        Some(Value::Sequence(names)) => names
            .iter()
            .map(|n| (str_of(n), "service_started".to_owned()))
            .collect(),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                let condition = get(v, "condition").map_or("service_started".into(), str_of);
                (str_of(k), condition)
            })
            .collect(),
        Some(other) => panic!("depends_on: {other:?}"),
    }
}

/// Short-syntax volume and bind mounts: (source, target).
pub fn mounts(service: &Value) -> Vec<(String, String)> {
    let Some(Value::Sequence(volumes)) = get(service, "volumes") else {
        return Vec::new();
    };
    volumes
        .iter()
        .map(|v| match v {
            Value::String(s) => {
                let mut parts = s.splitn(3, ':');
                let source = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default().to_owned();
                (source, target)
            }
            Value::Mapping(_) => (
                get(v, "source").map(str_of).unwrap_or_default(),
                get(v, "target").map(str_of).unwrap_or_default(),
            ),
            other => panic!("volume: {other:?}"),
        })
        .collect()
}

/// Published ports as (host, container), from `"8080:8080"` or `"127.0.0.1:8080:8080"`.
pub fn published_ports(service: &Value) -> Vec<(u16, u16)> {
    let Some(Value::Sequence(ports)) = get(service, "ports") else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| {
            let p = str_of(p);
            let parts: Vec<&str> = p.split(':').collect();
            let n = parts.len();
            assert!(
                n >= 2,
                "port {p}: give both the host and the container port"
            );
            let port = |s: &str| s.split('/').next().unwrap_or(s).parse::<u16>().expect(&p);
            (port(parts[n - 2]), port(parts[n - 1]))
        })
        .collect()
}

/// Every variable name `src/config.rs` reads (`env = "..."` on its fields).
pub fn config_env_names() -> BTreeSet<String> {
    let source = read("src/config.rs");
    let names: BTreeSet<String> = source
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_owned()))
        .collect();
    assert!(
        names.contains("RECLOOP_BIND") && names.contains("DATABASE_URL"),
        "src/config.rs no longer names its variables as `env = \"...\"`: update this test"
    );
    names
}

/// The default of the setting a variable names, as `default_value_t = ...` writes it, with
/// products of integers (`8 * 1024 * 1024`) worked out.
pub fn config_default_number(var: &str) -> u64 {
    let source = read("src/config.rs");
    let at = source
        .find(&format!("env = \"{var}\""))
        .unwrap_or_else(|| panic!("{var} not in src/config.rs"));
    let attribute = &source[at..source[at..].find(")]").map_or(source.len(), |end| at + end)];
    let expr = attribute
        .split_once("default_value_t = ")
        .unwrap_or_else(|| panic!("{var}: no default_value_t"))
        .1;
    expr.split('*')
        .map(|n| n.trim().replace('_', "").parse::<u64>())
        .product::<Result<u64, _>>()
        .unwrap_or_else(|e| panic!("{var}: default {expr:?} is not a product of integers: {e}"))
}

/// Parsed `postgres://user:password@host:port/database`.
#[derive(Debug)]
pub struct PgUrl {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub database: String,
}

pub fn parse_pg_url(url: &str) -> PgUrl {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .unwrap_or_else(|| panic!("DATABASE_URL {url:?} is not a postgres:// URL"));
    let (credentials, rest) = rest
        .split_once('@')
        .unwrap_or_else(|| panic!("DATABASE_URL {url:?} has no user"));
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let (address, database) = rest.split_once('/').unwrap_or((rest, ""));
    let database = database.split('?').next().unwrap_or_default();
    let (host, port) = address.split_once(':').unwrap_or((address, "5432"));
    PgUrl {
        user: user.to_owned(),
        password: password.to_owned(),
        host: host.to_owned(),
        port: port.parse().unwrap_or_else(|_| panic!("port of {url:?}")),
        database: database.to_owned(),
    }
}

/// One nginx directive: its name, its arguments and, for a block, what is inside.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Vec<Directive>,
}

impl Directive {
    /// Every directive called `name`, at any depth.
    pub fn find_all<'a>(list: &'a [Directive], name: &str, out: &mut Vec<&'a Directive>) {
        for d in list {
            if d.name == name {
                out.push(d);
            }
            Self::find_all(&d.block, name, out);
        }
    }
}

/// Enough of nginx's configuration syntax for the files here: directives, blocks, comments
/// and quoted strings.
pub fn parse_nginx(text: &str) -> Vec<Directive> {
    let mut tokens = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match quote {
                Some(q) if c == q => {
                    tokens.push(std::mem::take(&mut current));
                    quote = None;
                }
                Some(_) => current.push(c),
                None if c == '#' => break,
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() || "{};".contains(c) => {
                    if !current.is_empty() {
                        tokens.push(std::mem::take(&mut current));
                    }
                    if !c.is_whitespace() {
                        tokens.push(c.to_string());
                    }
                }
                None => current.push(c),
            }
        }
        if !current.is_empty() {
            tokens.push(current);
        }
    }
    fn block(tokens: &[String], at: &mut usize) -> Vec<Directive> {
        let mut out = Vec::new();
        while *at < tokens.len() {
            if tokens[*at] == "}" {
                *at += 1;
                return out;
            }
            let name = tokens[*at].clone();
            *at += 1;
            let mut args = Vec::new();
            while *at < tokens.len() && tokens[*at] != ";" && tokens[*at] != "{" {
                args.push(tokens[*at].clone());
                *at += 1;
            }
            assert!(*at < tokens.len(), "nginx.conf: `{name}` is not finished");
            let opens = tokens[*at] == "{";
            *at += 1;
            let inner = if opens { block(tokens, at) } else { Vec::new() };
            out.push(Directive {
                name,
                args,
                block: inner,
            });
        }
        out
    }
    let mut at = 0;
    block(&tokens, &mut at)
}

/// The instructions of a Dockerfile, continuation lines joined: (INSTRUCTION, rest).
pub fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let line = std::mem::take(&mut pending);
        if let Some((instruction, rest)) = line.split_once(char::is_whitespace) {
            out.push((instruction.to_uppercase(), rest.trim().to_owned()));
        }
    }
    out
}
