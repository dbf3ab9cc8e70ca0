//! docker/ as users run it, checked without a Docker engine: the compose
//! stack has the services the pipeline needs, configured for change data
//! capture; what it bind-mounts exists in the repository; the pipeline
//! the tributary service runs is one of those mounts, talks to the
//! stack's services, and passes `tributary validate --offline` (the real
//! binary); the Dockerfile builds the `tributary` package and ships the
//! binary. Each test lists everything it found wrong, not only the first.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    normalize(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn docker_dir() -> PathBuf {
    repo().join("docker")
}

/// `path` with `.` and `..` resolved lexically (it need not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()))
}

fn compose() -> Value {
    yaml(&docker_dir().join("compose.yaml"))
}

fn services(c: &Value) -> &serde_json::Map<String, Value> {
    c.get("services")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("docker/compose.yaml: no `services:` mapping"))
}

/// Panics with every failure, one per line.
fn report(what: &str, failures: &[String]) {
    assert!(failures.is_empty(), "{what}:\n  {}", failures.join("\n  "));
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A service's `command` (or `entrypoint`) as words: a list, or a string
/// split at whitespace (none of ours needs shell quoting).
fn words(service: &Value, key: &str) -> Vec<String> {
    match service.get(key) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    }
}

/// Compose's interpolation of `s`, as `docker compose` does it with none of
/// the variables set: `${VAR:-default}` and `${VAR-default}` give the
/// default, `$$` is a `$`. A variable without a default is an error: the
/// stack must come up as shipped.
fn interpolate(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| format!("{s:?}: unclosed ${{"))?;
            let inner = &r[..end];
            match inner.find(['-', ':', '?']) {
                Some(j) if inner[j..].starts_with(":-") => out.push_str(&inner[j + 2..]),
                Some(j) if inner[j..].starts_with('-') => out.push_str(&inner[j + 1..]),
                _ => {
                    return Err(format!(
                        "{s:?}: ${{{inner}}} has no default, so `docker compose up` needs it set; \
                         write ${{VAR:-default}}"
                    ));
                }
            }
            rest = &r[end + 1..];
        } else {
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len == 0 {
                out.push('$');
                rest = after;
            } else {
                return Err(format!(
                    "{s:?}: ${} has no default, so `docker compose up` needs it set; \
                     write ${{VAR:-default}}",
                    &after[..name_len]
                ));
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A service's `environment`, a mapping or a list of `KEY=VALUE`, with
/// compose's interpolation applied.
fn environment(
    name: &str,
    service: &Value,
    failures: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut raw = Vec::new();
    match service.get("environment") {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                raw.push((k.clone(), scalar(v).unwrap_or_default()));
            }
        }
        Some(Value::Array(a)) => {
            for e in a.iter().filter_map(scalar) {
                let (k, v) = e.split_once('=').unwrap_or((&e, ""));
                raw.push((k.to_string(), v.to_string()));
            }
        }
        _ => {}
    }
    let mut env = BTreeMap::new();
    for (k, v) in raw {
        match interpolate(&v) {
            Ok(v) => {
                env.insert(k, v);
            }
            Err(e) => failures.push(format!("services.{name}.environment.{k}: {e}")),
        }
    }
    env
}

/// One entry of a service's `volumes`.
#[derive(Debug)]
struct Mount {
    /// The host path (relative to docker/) or the volume's name.
    source: String,
    target: String,
    bind: bool,
    read_only: bool,
}

fn mounts(service: &Value) -> Vec<Mount> {
    let Some(Value::Array(entries)) = service.get("volumes") else {
        return Vec::new();
    };
    let is_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
    entries
        .iter()
        .filter_map(|e| match e {
            Value::String(s) => {
                let mut parts = s.splitn(3, ':');
                let source = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let mode = parts.next().unwrap_or_default();
                Some(Mount {
                    bind: is_path(&source),
                    read_only: mode.split(',').any(|m| m == "ro"),
                    source,
                    target,
                })
            }
            Value::Object(m) => {
                let get = |k: &str| m.get(k).and_then(scalar).unwrap_or_default();
                let source = get("source");
                Some(Mount {
                    bind: get("type") == "bind" || (get("type").is_empty() && is_path(&source)),
                    read_only: get("read_only") == "true",
                    source,
                    target: get("target"),
                })
            }
            _ => None,
        })
        .collect()
}

/// Where a bind mount's host side is: relative paths are relative to the
/// compose file's directory.
fn host_path(source: &str) -> PathBuf {
    normalize(&docker_dir().join(source))
}

/// Server options given as `--name=value`, `--name value`-less flags, or
/// PostgreSQL's `-c name=value`, with `-` and `_` in names alike.
fn server_options(args: &[String]) -> BTreeMap<String, String> {
    let mut opts = BTreeMap::new();
    let mut put = |kv: &str| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        opts.insert(k.replace('-', "_").to_ascii_lowercase(), v.to_string());
    };
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if a == "-c" {
            if let Some(kv) = it.next() {
                put(kv);
            }
        } else if let Some(kv) = a.strip_prefix("-c") {
            put(kv);
        } else if let Some(kv) = a.strip_prefix("--") {
            put(kv);
        }
    }
    opts
}

/// The compose services the stack needs, and checks on each.
#[test]
fn compose_has_the_services_configured_for_cdc() {
    let c = compose();
    let svc = services(&c);
    let mut failures = Vec::new();

    for (name, image) in [
        ("postgres", "postgres:"),
        ("mariadb", "mariadb:"),
        ("redis", "redis:"),
    ] {
        let Some(s) = svc.get(name) else {
            failures.push(format!("services.{name}: missing"));
            continue;
        };
        let img = s.get("image").and_then(scalar).unwrap_or_default();
        if !img.starts_with(image) {
            failures.push(format!(
                "services.{name}.image: {img:?}, expected {image}<tag>"
            ));
        }
        let test = s
            .get("healthcheck")
            .map(|h| words(h, "test"))
            .unwrap_or_default();
        if test.is_empty() || test[0] == "NONE" {
            failures.push(format!(
                "services.{name}.healthcheck.test: missing (tributary waits for service_healthy)"
            ));
        }
    }

    if let Some(pg) = svc.get("postgres") {
        let opts = server_options(&words(pg, "command"));
        if opts.get("wal_level").map(String::as_str) != Some("logical") {
            failures.push(format!(
                "services.postgres.command: no `-c wal_level=logical` (logical replication); got {:?}",
                words(pg, "command")
            ));
        }
        for k in ["max_replication_slots", "max_wal_senders"] {
            if !opts
                .get(k)
                .is_some_and(|v| v.parse::<u32>().is_ok_and(|n| n >= 1))
            {
                failures.push(format!("services.postgres.command: no `-c {k}=N`"));
            }
        }
    }

    if let Some(maria) = svc.get("mariadb") {
        let cmd = words(maria, "command");
        let opts = server_options(&cmd);
        if !opts.contains_key("log_bin") {
            failures.push(format!(
                "services.mariadb.command: no --log-bin (the binlog is off); got {cmd:?}"
            ));
        }
        for (k, want, why) in [
            ("binlog_format", "ROW", "row events"),
            ("binlog_row_image", "FULL", "whole rows before and after"),
            (
                "binlog_row_metadata",
                "FULL",
                "column names in table maps; the default NO_LOG has none",
            ),
            (
                "gtid_strict_mode",
                "1",
                "GTID positions the source resumes from",
            ),
        ] {
            if !opts
                .get(k)
                .is_some_and(|v| v.eq_ignore_ascii_case(want) || (want == "1" && v == "ON"))
            {
                failures.push(format!(
                    "services.mariadb.command: no --{}={want} ({why}); got {cmd:?}",
                    k.replace('_', "-")
                ));
            }
        }
        if !opts
            .get("server_id")
            .is_some_and(|v| v.parse::<u32>().is_ok_and(|n| n >= 1))
        {
            failures.push("services.mariadb.command: no --server-id=N (a binlog needs one)".into());
        }
    }

    match svc.get("tributary") {
        None => failures.push("services.tributary: missing".into()),
        Some(t) => {
            // Built from docker/Dockerfile with the repository as context.
            let build = t.get("build");
            let (context, dockerfile) = match build {
                Some(Value::String(ctx)) => (ctx.clone(), "Dockerfile".to_string()),
                Some(b) => (
                    b.get("context")
                        .and_then(scalar)
                        .unwrap_or_else(|| ".".into()),
                    b.get("dockerfile")
                        .and_then(scalar)
                        .unwrap_or_else(|| "Dockerfile".into()),
                ),
                None => (String::new(), String::new()),
            };
            if build.is_none() {
                failures.push(
                    "services.tributary.build: missing (build from docker/Dockerfile)".into(),
                );
            } else {
                let ctx = host_path(&context);
                if ctx != repo() {
                    failures.push(format!(
                        "services.tributary.build.context: {context:?} is {}, not the repository root {}",
                        ctx.display(),
                        repo().display()
                    ));
                }
                let file = normalize(&ctx.join(&dockerfile));
                if file != docker_dir().join("Dockerfile") {
                    failures.push(format!(
                        "services.tributary.build.dockerfile: {dockerfile:?} is {}, not docker/Dockerfile",
                        file.display()
                    ));
                }
            }
            // The HTTP and gRPC ports, on the host's loopback only.
            let ports: Vec<(String, String)> = match t.get("ports") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|p| match p {
                        Value::Object(m) => (
                            m.get("host_ip").and_then(scalar).unwrap_or_default(),
                            m.get("target").and_then(scalar).unwrap_or_default(),
                        ),
                        other => {
                            let s = scalar(other).unwrap_or_default();
                            let parts: Vec<&str> = s.split(':').collect();
                            let ip = if parts.len() == 3 { parts[0] } else { "" };
                            let target = parts.last().copied().unwrap_or_default();
                            (
                                ip.to_string(),
                                target.split('/').next().unwrap_or_default().into(),
                            )
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (port, what) in [("8080", "HTTP"), ("50051", "gRPC")] {
                match ports.iter().find(|(_, target)| target == port) {
                    None => failures.push(format!(
                        "services.tributary.ports: the {what} port {port} is not published"
                    )),
                    Some((ip, _)) if ip != "127.0.0.1" => failures.push(format!(
                        "services.tributary.ports: {port} is published on {:?}, not 127.0.0.1 only",
                        if ip.is_empty() { "every interface" } else { ip }
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    report("docker/compose.yaml", &failures);
}

/// Every bind mount of every service is a path in the repository that
/// exists (Docker would create a missing one as an empty directory).
#[test]
fn compose_bind_mounts_exist_in_the_repo() {
    let c = compose();
    let mut failures = Vec::new();
    let mut seen = 0;
    for (name, s) in services(&c) {
        for m in mounts(s).into_iter().filter(|m| m.bind) {
            seen += 1;
            let host = host_path(&m.source);
            if !host.starts_with(repo()) {
                failures.push(format!(
                    "services.{name}.volumes: {} -> {}: {} is outside the repository",
                    m.source,
                    m.target,
                    host.display()
                ));
            } else if !host.exists() {
                failures.push(format!(
                    "services.{name}.volumes: {} -> {}: {} does not exist in the repository",
                    m.source,
                    m.target,
                    host.display()
                ));
            }
        }
    }
    assert!(seen > 0, "docker/compose.yaml: no bind mounts at all");
    report("docker/compose.yaml bind mounts", &failures);
}

/// The host of a URL (`scheme://user:password@HOST:port/...`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host_port,
    };
    Some(host.to_string())
}

/// The pipeline the tributary service runs: mounted from the repository,
/// valid, aimed at the stack's services, which tributary waits for.
#[test]
fn compose_runs_a_valid_pipeline_against_its_services() {
    let c = compose();
    let svc = services(&c);
    let t = svc
        .get("tributary")
        .unwrap_or_else(|| panic!("docker/compose.yaml: services.tributary: missing"));
    let mut failures = Vec::new();

    // `tributary [global options] run FILE`.
    let mut args = words(t, "entrypoint");
    args.extend(words(t, "command"));
    let Some(file) = args
        .iter()
        .position(|a| a == "run")
        .and_then(|i| args.get(i + 1))
    else {
        panic!("docker/compose.yaml: services.tributary.command: no `run FILE` in {args:?}");
    };

    // Which mount holds it.
    let ms = mounts(t);
    let Some((m, host)) = ms.iter().find_map(|m| {
        let target = m.target.trim_end_matches('/');
        let rest = if file == target {
            Some("")
        } else {
            file.strip_prefix(target).and_then(|r| r.strip_prefix('/'))
        }?;
        Some((m, host_path(&m.source).join(rest)))
    }) else {
        panic!(
            "docker/compose.yaml: services.tributary runs {file}, which no volume of it mounts (volumes: {:?})",
            ms.iter()
                .map(|m| format!("{}:{}", m.source, m.target))
                .collect::<Vec<_>>()
        );
    };
    if !m.bind {
        failures.push(format!(
            "services.tributary: {file} comes from the named volume {:?}, not from the repository",
            m.source
        ));
    }
    if !m.read_only {
        failures.push(format!(
            "services.tributary.volumes: {}:{} should be read-only (:ro)",
            m.source, m.target
        ));
    }
    assert!(
        host.is_file() && host.starts_with(repo()),
        "docker/compose.yaml: services.tributary runs {file}, mounted from {}, which is not a file in the repository",
        host.display()
    );

    // The real binary, with only the environment compose gives it.
    let env = environment("tributary", t, &mut failures);
    let out = crate::common::command()
        .env_clear()
        .envs(&env)
        .arg("validate")
        .arg("--offline")
        .arg(&host)
        .output()
        .expect("run tributary validate");
    if !out.status.success() {
        failures.push(format!(
            "tributary validate --offline {} (environment {:?}) failed: {}",
            host.display(),
            env.keys().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }

    // Its connections go to the stack's services, each one that tributary
    // waits for until healthy.
    let pipeline = yaml(&host);
    let healthy: Vec<&str> = match t.get("depends_on") {
        Some(Value::Object(d)) => d
            .iter()
            .filter(|(_, v)| v.get("condition").and_then(Value::as_str) == Some("service_healthy"))
            .map(|(k, _)| k.as_str())
            .collect(),
        _ => Vec::new(),
    };
    let names: Vec<&str> = svc.keys().map(String::as_str).collect();
    let mut kinds = Vec::new();
    for section in ["sources", "sinks"] {
        let entries = pipeline
            .get(section)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if entries.is_empty() {
            failures.push(format!("{}: no {section}", host.display()));
        }
        for (i, e) in entries.iter().enumerate() {
            let label = format!(
                "{}: {section}[{i}] ({})",
                host.display(),
                e.get("name").and_then(scalar).unwrap_or_default()
            );
            let kind = e.get("kind").and_then(scalar).unwrap_or_default();
            kinds.push(format!("{section}:{kind}"));
            let host_name = e
                .get("url")
                .and_then(scalar)
                .and_then(|u| url_host(&u))
                .or_else(|| e.get("host").and_then(scalar));
            let Some(h) = host_name else {
                if kind != "tantivy" {
                    failures.push(format!("{label}: no url or host"));
                }
                continue;
            };
            if !names.contains(&h.as_str()) {
                failures.push(format!(
                    "{label}: host {h:?} is not a compose service ({names:?}); inside the container \
                     127.0.0.1 is the tributary container itself"
                ));
            } else if !healthy.contains(&h.as_str()) {
                failures.push(format!(
                    "services.tributary.depends_on: {h} (used by {label}) is not waited for with \
                     condition: service_healthy"
                ));
            }
        }
    }
    let has = |k: &str| kinds.iter().any(|x| x == k);
    if !((has("sources:postgres") && has("sinks:redis"))
        || (has("sources:mysql") && has("sinks:postgres")))
    {
        failures.push(format!(
            "{}: neither PostgreSQL -> Redis nor MariaDB -> PostgreSQL (has {kinds:?})",
            host.display()
        ));
    }

    // Published ports reach the server only if it listens beyond the
    // container's loopback (the default is 127.0.0.1).
    for (key, port) in [("http", "8080"), ("grpc", "50051")] {
        let addr = pipeline
            .get("server")
            .and_then(|s| s.get(key))
            .and_then(scalar)
            .unwrap_or_else(|| format!("127.0.0.1:{port} (the default)"));
        if !(addr == format!("0.0.0.0:{port}") || addr == format!("[::]:{port}")) {
            failures.push(format!(
                "{}: server.{key} is {addr}; compose publishes container port {port}, so listen on 0.0.0.0:{port}",
                host.display()
            ));
        }
    }
    report("the pipeline docker/compose.yaml runs", &failures);
}

/// Dockerfile instructions: continuation lines joined, comments and blank
/// lines dropped, `(INSTRUCTION, arguments)`.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (i, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push((i.to_ascii_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// Exec-form (`["a", "b"]`) or shell-form arguments as words.
fn exec_words(args: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(args) {
        Ok(v) => v,
        Err(_) => args.split_whitespace().map(str::to_string).collect(),
    }
}

#[test]
fn dockerfile_builds_and_ships_the_tributary_binary() {
    let path = docker_dir().join("Dockerfile");
    let text = read(&path);
    let ins = instructions(&text);
    let mut failures = Vec::new();

    let froms: Vec<&str> = ins
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    let last_from = froms.len().saturating_sub(1);
    if !froms
        .first()
        .is_some_and(|f| f.contains("rust:") && f.contains("bookworm"))
    {
        failures.push(format!(
            "the build stage is not an official rust bookworm image: FROM {:?}",
            froms.first()
        ));
    }
    if froms.len() < 2 || !froms[last_from].starts_with("debian:bookworm-slim") {
        failures.push(format!(
            "the runtime stage (last FROM) is not debian:bookworm-slim: {froms:?}"
        ));
    }

    // cargo build --release --locked -p tributary, caches mounted.
    let build = ins
        .iter()
        .find(|(i, a)| i == "RUN" && a.contains("cargo build"));
    let mut cache_targets = Vec::new();
    match build {
        None => failures.push("no RUN with `cargo build`".into()),
        Some((_, run)) => {
            let w: Vec<&str> = run.split_whitespace().collect();
            let package = w
                .windows(2)
                .any(|p| matches!(p[0], "-p" | "--package") && p[1] == "tributary")
                || w.iter()
                    .any(|x| *x == "-p=tributary" || *x == "--package=tributary");
            if !package {
                failures.push(format!(
                    "`cargo build` does not build the tributary package (-p tributary): {run}"
                ));
            }
            for flag in ["--release", "--locked"] {
                if !w.contains(&flag) {
                    failures.push(format!("`cargo build` without {flag}: {run}"));
                }
            }
            for x in &w {
                if let Some(m) = x.strip_prefix("--mount=")
                    && m.split(',').any(|kv| kv == "type=cache")
                    && let Some(t) = m.split(',').find_map(|kv| kv.strip_prefix("target="))
                {
                    cache_targets.push(t.to_string());
                }
            }
            for what in ["registry", "target"] {
                if !cache_targets.iter().any(|t| t.ends_with(what)) {
                    failures.push(format!(
                        "no cache mount for cargo's {what} on the build RUN"
                    ));
                }
            }
        }
    }

    // The binary copied from the build stage to /usr/local/bin/tributary:
    // from a path the build RUN put it at, outside the cache mounts (their
    // contents are not in the stage's image).
    let copy = ins.iter().find(|(i, a)| {
        i == "COPY"
            && a.split_whitespace().any(|w| w.starts_with("--from="))
            && a.split_whitespace().last().is_some_and(|d| {
                d == "/usr/local/bin/tributary" || d == "/usr/local/bin/" || d == "/usr/local/bin"
            })
    });
    match copy {
        None => failures.push("no `COPY --from=<build stage> ... /usr/local/bin/tributary`".into()),
        Some((_, a)) => {
            let w: Vec<&str> = a
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let src = w.first().copied().unwrap_or_default();
            if !src.ends_with("/tributary") {
                failures.push(format!("COPY {a}: the source is not the tributary binary"));
            }
            if let Some(t) = cache_targets.iter().find(|t| src.starts_with(t.as_str())) {
                failures.push(format!(
                    "COPY {a}: {src} is inside the cache mount {t}, which is not in the build stage's image"
                ));
            }
            if let Some((_, run)) = build
                && !run.split_whitespace().any(|x| x == src)
            {
                failures.push(format!(
                    "COPY {a}: the build RUN does not put the binary at {src}"
                ));
            }
        }
    }

    let runtime = &ins[ins
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .unwrap_or_default()..];
    let last = |name: &str| {
        runtime
            .iter()
            .rev()
            .find(|(i, _)| i == name)
            .map(|(_, a)| a.clone())
    };
    match last("USER") {
        Some(u) if !matches!(u.split(':').next(), Some("root" | "0")) => {}
        other => failures.push(format!("the runtime stage runs as root (USER {other:?})")),
    }
    if !last("ENTRYPOINT").is_some_and(|e| {
        exec_words(&e)
            .first()
            .is_some_and(|w| w.ends_with("tributary"))
    }) {
        failures.push(format!(
            "ENTRYPOINT is not tributary: {:?}",
            last("ENTRYPOINT")
        ));
    }
    let exposed: Vec<String> = runtime
        .iter()
        .filter(|(i, _)| i == "EXPOSE")
        .flat_map(|(_, a)| {
            a.split_whitespace()
                .map(|p| p.split('/').next().unwrap_or_default().to_string())
        })
        .collect();
    for port in ["8080", "50051"] {
        if !exposed.iter().any(|p| p == port) {
            failures.push(format!("no EXPOSE {port}"));
        }
    }
    if !runtime
        .iter()
        .any(|(i, a)| i == "VOLUME" && exec_words(a).iter().any(|v| v == "/data"))
    {
        failures.push("no VOLUME /data".into());
    }
    if !runtime
        .iter()
        .any(|(i, a)| i == "RUN" && a.contains("ca-certificates"))
    {
        failures.push("the runtime stage does not install ca-certificates".into());
    }
    if text.contains("protobuf-compiler") {
        failures.push("installs protobuf-compiler: protobuf code generation uses protox".into());
    }

    // The context is the repository: keep build output and data out of it.
    let ignore = repo().join(".dockerignore");
    match std::fs::read_to_string(&ignore) {
        Err(e) => failures.push(format!("{}: {e}", ignore.display())),
        Ok(t) => {
            if !t.lines().any(|l| {
                matches!(
                    l.trim(),
                    "target" | "target/" | "/target" | "**/target" | "**/target/"
                )
            }) {
                failures.push(format!("{}: does not exclude target/", ignore.display()));
            }
            if !t.lines().any(|l| l.contains("tributary-data")) {
                failures.push(format!(
                    "{}: does not exclude tributary-data/",
                    ignore.display()
                ));
            }
        }
    }
    report("docker/Dockerfile", &failures);
}

#[test]
fn interpolation_uses_defaults_and_refuses_unset_variables() {
    assert_eq!(interpolate("${A:-x}/${B-y}/$$HOME"), Ok("x/y/$HOME".into()));
    assert!(interpolate("${A}").is_err());
    assert!(interpolate("$A").is_err());
    assert_eq!(
        url_host("postgres://u:p@postgres:5432/db?x=1"),
        Some("postgres".into())
    );
    assert_eq!(url_host("redis://redis"), Some("redis".into()));
}
