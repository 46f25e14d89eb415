//! A fleet of three `serve` processes sharing one real Redis (`redis-server`, started by the tests) and
//! one moto STS: one AssumeRole per user for the whole fleet, asked in turn and at once; Redis killed
//! under load fails no request, and sharing resumes when it is back; an entry altered in Redis, or
//! sealed with another key, is never served; a node with another key reads nothing.

mod support;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::moto::Moto;
use support::redis::Redis;
use support::server::{Client, Served, TOKEN, Target, TempDir};

const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/lake", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]}
]}"#;

/// A fleet key file of mode 0600 in `dir`.
fn key_file(dir: &TempDir, name: &str, key: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

const KEY: &str = "5f4dcc3b5aa765d61d8327deb882cf995f4dcc3b5aa765d61d8327deb882cf99";
const OTHER_KEY: &str = "e99a18c428cb38d5f260853678922e03e99a18c428cb38d5f260853678922e03";

/// A node sharing through `redis` under the key in `key`. The call timeout is generous: the tests
/// share 2 cores with three servers, moto and Redis, and a timeout would only make a node work alone.
fn node(moto: &Moto, redis: &Redis, key: &std::path::Path) -> Served {
    let url = redis.url();
    let args =
        ["--shared-cache", &url, "--shared-cache-key-file", key.to_str().unwrap(), "--shared-cache-timeout", "1000"];
    Served::start(CONFIG, &moto.endpoint(), &args)
}

fn client(node: &Served) -> Client {
    Client { target: Target::Tcp(node.tcp.unwrap()), token: Some(TOKEN.to_owned()) }
}

/// The access key ID `node` hands out for `user`, or the error body.
async fn ask(node: &Served, user: &str) -> Result<String, String> {
    let body = format!(r#"{{"user": "{user}", "path": "s3://lake/{user}/part-0"}}"#);
    let reply = client(node).post("/v1/credentials", &body).await;
    if reply.status != 200 {
        return Err(format!("{}: {}", reply.status, reply.body));
    }
    Ok(reply.json()["Credentials"]["AccessKeyId"].as_str().unwrap().to_owned())
}

/// A metric of `node`, 0 when it is absent.
async fn metric(node: &Served, name: &str) -> f64 {
    let text = client(node).get("/metrics").await.body;
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

/// The store keys holding credentials.
fn credential_keys(redis: &Redis) -> HashSet<String> {
    let mut connection = redis.connection().expect("redis answers");
    redis::cmd("KEYS").arg("emrfs-rolemap:v1:c:*").query(&mut connection).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_makes_one_assume_role_per_user_asked_in_turn_or_at_once() {
    let (moto, redis, keys) = (Moto::start(), Redis::start(), TempDir::new("fleet-keys"));
    let key = key_file(&keys, "fleet.key", KEY);
    let nodes: Vec<Served> = (0..3).map(|_| node(&moto, &redis, &key)).collect();
    let before = moto.assumed_roles().len();

    // 50 users asked in turn on every node.
    let mut handed_out = HashSet::new();
    for u in 0..50 {
        for node in &nodes {
            handed_out.insert(ask(node, &format!("user{u}")).await.unwrap());
        }
    }
    assert_eq!(moto.assumed_roles().len() - before, 50, "one AssumeRole per user for the fleet");
    assert_eq!(handed_out.len(), 50, "150 answers, 50 access keys");
    assert_eq!(metric(&nodes[0], "emrfs_rolemap_shared_cache_writes_total").await, 50.0);
    assert_eq!(metric(&nodes[1], "emrfs_rolemap_shared_cache_hits_total").await, 50.0);
    assert_eq!(metric(&nodes[2], "emrfs_rolemap_credential_cache_source_calls_total").await, 0.0);
    let stored = credential_keys(&redis);
    assert_eq!(stored.len(), 50);
    assert!(stored.iter().all(|k| !k.contains("user") && !k.contains("lake")), "no user or role in clear");
    let granted =
        r#"emrfs_rolemap_credential_grants_total{role="arn:aws:iam::123456789012:role/lake",origin="shared"}"#;
    assert_eq!(metric(&nodes[2], granted).await, 50.0, "grants from the shared tier are counted as such");

    // 20 users asked on all three nodes at once.
    let before = moto.assumed_roles().len();
    let nodes = Arc::new(nodes);
    let mut asks = Vec::new();
    for u in 0..20 {
        for n in 0..3 {
            let nodes = Arc::clone(&nodes);
            asks.push(tokio::spawn(async move { ask(&nodes[n], &format!("burst{u}")).await }));
        }
    }
    let mut handed_out = HashSet::new();
    for ask in asks {
        handed_out.insert(ask.await.unwrap().unwrap());
    }
    assert_eq!(moto.assumed_roles().len() - before, 20, "one AssumeRole per user, the lock holding the others");
    assert_eq!(handed_out.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_fails_no_request_and_sharing_resumes() {
    let (moto, mut redis, keys) = (Moto::start(), Redis::start(), TempDir::new("fleet-keys"));
    let key = key_file(&keys, "fleet.key", KEY);
    let nodes = Arc::new((0..3).map(|_| node(&moto, &redis, &key)).collect::<Vec<_>>());
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for n in 0..3 {
        let (nodes, sent, failed, stop) = (nodes.clone(), sent.clone(), failed.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                // New users (local misses, which ask Redis) and known ones (local hits).
                let user = if i % 2 == 0 { format!("load{n}-{i}") } else { "steady".to_owned() };
                sent.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = ask(&nodes[n], &user).await {
                    eprintln!("failed: {e}");
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for node in nodes.iter() {
        assert_eq!(metric(node, "emrfs_rolemap_shared_cache_breaker_open").await, 1.0, "the breaker opened");
    }
    redis.restart();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request failed, of {}", sent.load(Ordering::SeqCst));
    assert!(sent.load(Ordering::SeqCst) > 60, "the load ran: {}", sent.load(Ordering::SeqCst));

    // Redis is back: every node's probe closes its breaker, and the fleet shares again.
    let started = Instant::now();
    for node in nodes.iter() {
        while metric(node, "emrfs_rolemap_shared_cache_breaker_open").await != 0.0 {
            assert!(started.elapsed() < Duration::from_secs(20), "a breaker never closed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let before = moto.assumed_roles().len();
    for node in nodes.iter() {
        ask(node, "after-the-outage").await.unwrap();
    }
    assert_eq!(moto.assumed_roles().len() - before, 1, "sharing resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_and_foreign_entries_are_never_served() {
    let (moto, redis, keys) = (Moto::start(), Redis::start(), TempDir::new("fleet-keys"));
    let (key, other) = (key_file(&keys, "fleet.key", KEY), key_file(&keys, "other.key", OTHER_KEY));
    let (a, b, foreign) = (node(&moto, &redis, &key), node(&moto, &redis, &key), node(&moto, &redis, &other));
    let mut connection = redis.connection().unwrap();

    // Altered: a byte of alice's entry flipped in Redis.
    let alice = ask(&a, "alice").await.unwrap();
    let alice_key = credential_keys(&redis).into_iter().next().unwrap();
    let mut value: Vec<u8> = redis::cmd("GET").arg(&alice_key).query(&mut connection).unwrap();
    let middle = value.len() / 2;
    value[middle] ^= 0x01;
    let () = redis::cmd("SET").arg(&alice_key).arg(&value).arg("KEEPTTL").query(&mut connection).unwrap();
    let before = moto.assumed_roles().len();
    let other = ask(&b, "alice").await.unwrap();
    assert_ne!(other, alice, "the altered entry was not served");
    assert_eq!(moto.assumed_roles().len() - before, 1, "node b asked STS instead");
    assert_eq!(metric(&b, "emrfs_rolemap_shared_cache_rejected_total").await, 1.0);

    // A node with another key reads nothing the fleet wrote, and its entries are no use to the fleet.
    let known = ask(&a, "bob").await.unwrap();
    let before = moto.assumed_roles().len();
    let foreigners = ask(&foreign, "bob").await.unwrap();
    assert_ne!(foreigners, known);
    assert_eq!(moto.assumed_roles().len() - before, 1);
    assert_eq!(metric(&foreign, "emrfs_rolemap_shared_cache_hits_total").await, 0.0);

    // Sealed with another key, under the fleet's store key of the same request: not served, counted.
    let new_key = |before: &HashSet<String>| {
        let added: Vec<String> = credential_keys(&redis).difference(before).cloned().collect();
        assert_eq!(added.len(), 1, "{added:?}");
        added.into_iter().next().unwrap()
    };
    let stored = credential_keys(&redis);
    let carol = ask(&foreign, "carol").await.unwrap();
    let foreign_key = new_key(&stored);
    let sealed_elsewhere: Vec<u8> = redis::cmd("GET").arg(&foreign_key).query(&mut connection).unwrap();
    let stored = credential_keys(&redis);
    ask(&a, "carol").await.unwrap();
    let fleet_key = new_key(&stored);
    let () = redis::cmd("SET").arg(&fleet_key).arg(&sealed_elsewhere).arg("KEEPTTL").query(&mut connection).unwrap();
    let rejected = metric(&b, "emrfs_rolemap_shared_cache_rejected_total").await;
    let served = ask(&b, "carol").await.unwrap();
    assert_ne!(served, carol, "the entry sealed with another key was not served");
    assert_eq!(metric(&b, "emrfs_rolemap_shared_cache_rejected_total").await, rejected + 1.0);
}

#[test]
fn a_shared_cache_needs_its_key_and_never_shows_a_password() {
    let dir = TempDir::new("fleet-args");
    let config = dir.path().join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let socket = dir.path().join("s.sock");
    let run = |extra: &[&str]| {
        let output = support::moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"))
            .args(["serve", "--config", config.to_str().unwrap(), "--socket", socket.to_str().unwrap()])
            .args(["--sts-endpoint", "http://127.0.0.1:9", "--region", "us-east-1"])
            .args(extra)
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = run(&["--shared-cache", "redis://127.0.0.1:6379"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--shared-cache-key-file"), "{stderr}");
    let key = key_file(&dir, "fleet.key", KEY);
    let (code, stderr) =
        run(&["--shared-cache", "http://:hunter2@cache", "--shared-cache-key-file", key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid shared cache URL") && !stderr.contains("hunter2"), "{stderr}");
    let short = key_file(&dir, "short.key", "too-short");
    let (code, stderr) =
        run(&["--shared-cache", "redis://127.0.0.1:6379", "--shared-cache-key-file", short.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("at least 32 bytes") && !stderr.contains("too-short"), "{stderr}");
}

/// `rediss://`: the server's certificate is verified against the roots the node trusts (here a test CA
/// through `SSL_CERT_FILE`), and a node that cannot verify it shares nothing, failing no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_redis_is_verified() {
    let (moto, keys, certificates) = (Moto::start(), TempDir::new("fleet-keys"), TempDir::new("redis-tls"));
    let redis = Redis::start_tls(certificates.path());
    let key = key_file(&keys, "fleet.key", KEY);
    let ca = certificates.path().join("ca.crt");
    let url = redis.url();
    let args =
        ["--shared-cache", &url, "--shared-cache-key-file", key.to_str().unwrap(), "--shared-cache-timeout", "1000"];
    let trusting = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    let (a, b) = (
        Served::start_with_env(CONFIG, &moto.endpoint(), &args, &trusting),
        Served::start_with_env(CONFIG, &moto.endpoint(), &args, &trusting),
    );
    let before = moto.assumed_roles().len();
    assert_eq!(ask(&a, "alice").await.unwrap(), ask(&b, "alice").await.unwrap());
    assert_eq!(moto.assumed_roles().len() - before, 1, "shared over TLS");
    assert_eq!(metric(&b, "emrfs_rolemap_shared_cache_hits_total").await, 1.0);

    let doubting = Served::start_with_env(CONFIG, &moto.endpoint(), &args, &[("SSL_CERT_FILE", "/dev/null")]);
    let before = moto.assumed_roles().len();
    ask(&doubting, "alice").await.unwrap();
    assert_eq!(moto.assumed_roles().len() - before, 1, "an unverified Redis is not used");
    assert_eq!(metric(&doubting, "emrfs_rolemap_shared_cache_hits_total").await, 0.0);
    assert!(metric(&doubting, "emrfs_rolemap_shared_cache_errors_total").await >= 1.0);
}
