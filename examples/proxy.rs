//! A data-access proxy in miniature: how to embed `emrfs-rolemap` in a server.
//!
//! The proxy compiles a security configuration once, shares one credential [`Broker`] (STS behind
//! the credential cache) across all connections, and speaks one JSON answer per line over TCP. The
//! first line of a connection names the principal, which is prepared once for the connection; every
//! later line is an S3 path, resolved and served with the decided role's credentials:
//!
//! ```text
//! > user alice groups finance,staff
//! < {"user":"alice","groups":["finance","staff"]}
//! > s3://acme-lake/curated/sales/part-0
//! < {"decision":"mapping","role":"arn:aws:iam::111122223333:role/emrfs/finance","mapping_index":3,"access_key_id":"ASIA...","expiration":"2030-01-01T00:00:00Z"}
//! > s3:/nowhere
//! < {"error":"invalid path `s3:/nowhere`: not an S3 URI: no `://` after a scheme"}
//! ```
//!
//! Answers never carry the secret access key or the session token: a real proxy signs the S3
//! request with them instead. A bad line (not a principal, not a path, not UTF-8, over 4 KiB) gets an
//! `{"error": ...}` answer, and the connection goes on.
//!
//! Run it against the moto STS emulator (`bash scripts/install-moto.sh`). The base credentials come
//! from the SDK's default chain (on EMR, the instance profile); here, from the environment:
//!
//! ```sh
//! target/moto-venv/bin/moto_server -H 127.0.0.1 -p 5000 &
//! export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
//! export AWS_ACCESS_KEY_ID=AKIAEXAMPLEBASEKEY AWS_SECRET_ACCESS_KEY=example-secret
//! cargo run --example proxy -- --config examples/configs/multi-team.json \
//!     --sts-endpoint http://127.0.0.1:5000 --region us-east-1 \
//!     --demo 'user alice groups finance' s3://acme-lake/curated/t/part-0 s3://acme-lake/pii/x
//! ```
//!
//! `--demo LINE...` makes the proxy its own client: it serves one connection on a free loopback
//! port, sends the lines, prints each with its answer and exits (1 when an answer is an error).
//! Without it the proxy serves `--listen` (default `127.0.0.1:9945`) until stopped.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, CredentialCache, StsSource, StsSourceConfig,
};
use emrfs_rolemap::{PreparedPrincipal, Resolver, ResolverBuilder, S3Path, SecurityConfiguration};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};

/// The longest request line; S3 keys are at most 1 KiB.
const MAX_LINE: u64 = 4096;

#[derive(Parser)]
struct Args {
    /// The security configuration, in any form `emrfs-rolemap check` accepts.
    #[arg(long)]
    config: PathBuf,
    /// The address to serve.
    #[arg(long, default_value = "127.0.0.1:9945")]
    listen: SocketAddr,
    /// The STS endpoint URL (a VPC endpoint, an emulator); default: the region's.
    #[arg(long, value_name = "URL")]
    sts_endpoint: Option<String>,
    /// The AWS region; default: `AWS_REGION`.
    #[arg(long)]
    region: Option<String>,
    /// Serve one connection on a free port, send it these lines, print the answers and exit.
    #[arg(long, num_args = 1.., value_name = "LINE")]
    demo: Vec<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, Error> {
    // Once per process: parse, validate and compile the configuration; build the credential broker.
    let bytes = std::fs::read(&args.config).map_err(|e| format!("cannot read `{}`: {e}", args.config.display()))?;
    let config = match SecurityConfiguration::from_slice(&bytes) {
        Ok(config) => config,
        Err(diagnostics) => {
            eprint!("{}", diagnostics.render(&args.config.display().to_string()));
            return Ok(ExitCode::from(2));
        }
    };
    let resolver = ResolverBuilder::new().build(&config)?;
    let region = args.region.or_else(|| std::env::var("AWS_REGION").ok()).ok_or("no region: give --region")?;
    let mut config = StsSourceConfig::new(region);
    config.endpoint_url = args.sts_endpoint;
    let source = StsSource::new(config);
    let cache = CredentialCache::new(source.await?, CacheConfig::default());
    let broker = Broker::new(cache, AssumeRoleSettings::default())?;

    let listener = TcpListener::bind(if args.demo.is_empty() { args.listen } else { ([127, 0, 0, 1], 0).into() });
    let listener = listener.await?;
    let address = listener.local_addr()?;
    println!("listening on {address}");
    if args.demo.is_empty() {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    eprintln!("accept: {error}");
                    continue;
                }
            };
            let (resolver, broker) = (resolver.clone(), broker.clone());
            tokio::spawn(async move {
                if let Err(error) = serve(stream, &resolver, &broker).await {
                    eprintln!("{peer}: {error}");
                }
            });
        }
    }

    let client = tokio::spawn(demo_client(address, args.demo.clone()));
    serve(listener.accept().await?.0, &resolver, &broker).await?;
    let answers = client.await??;
    for (line, answer) in args.demo.iter().zip(&answers) {
        println!("> {line}\n< {answer}");
    }
    let stats = broker.cache().stats();
    eprintln!("credential cache: {} hits, {} STS calls", stats.hits, stats.source_calls);
    let failed = answers.iter().any(|a| serde_json::from_str::<Value>(a).map_or(true, |v| v.get("error").is_some()));
    Ok(if failed || answers.len() != args.demo.len() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Serves one connection: one answer per line until the client closes it.
async fn serve(stream: TcpStream, resolver: &Resolver, broker: &Broker<StsSource>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let mut session = None;
    loop {
        line.clear();
        if (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let answer = if !line.ends_with(b"\n") && line.len() as u64 == MAX_LINE {
            skip_rest_of_line(&mut reader).await?;
            json!({"error": format!("line longer than {MAX_LINE} bytes")})
        } else {
            match std::str::from_utf8(&line) {
                Ok(text) => answer(text.trim(), &mut session, resolver, broker).await,
                Err(_) => json!({"error": "the line is not UTF-8"}),
            }
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
}

/// Discards the rest of an over-long line, without buffering it.
async fn skip_rest_of_line(reader: &mut BufReader<OwnedReadHalf>) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf().await?;
        let (used, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), buffer.is_empty()),
        };
        reader.consume(used);
        if done {
            return Ok(());
        }
    }
}

/// The answer to one line: the principal while there is none yet, then a path.
async fn answer(
    line: &str,
    session: &mut Option<PreparedPrincipal>,
    resolver: &Resolver,
    broker: &Broker<StsSource>,
) -> Value {
    let Some(principal) = session.as_ref() else {
        return match parse_principal(line) {
            Ok((user, groups)) => {
                let answer = json!({"user": user, "groups": groups});
                // Once per connection: look the user and the groups up in the compiled configuration.
                *session = Some(resolver.prepare(Some(user), &groups));
                answer
            }
            Err(error) => json!({"error": error}),
        };
    };
    let path = match S3Path::parse(line) {
        Ok(path) => path,
        Err(error) => return json!({"error": format!("invalid path `{line}`: {error}")}),
    };
    // Per request: resolve the path for the prepared principal, then fetch (usually from the cache).
    match broker.access(principal, Some(&path)).await {
        Ok(access) => json!({
            "decision": access.resolution.decision(),
            "role": access.resolution.role().map(ToString::to_string),
            "mapping_index": access.resolution.mapping_index(),
            "access_key_id": access.credentials.access_key_id(),
            "expiration": access.credentials.expiration_rfc3339(),
        }),
        Err(error) => json!({"error": error.to_string()}),
    }
}

/// `user NAME` or `user NAME groups G1,G2,...`.
fn parse_principal(line: &str) -> Result<(&str, Vec<&str>), String> {
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["user", user] => Ok((user, Vec::new())),
        ["user", user, "groups", groups] => Ok((user, groups.split(',').filter(|g| !g.is_empty()).collect())),
        _ => Err(format!("expected `user NAME [groups G1,G2,...]`, got `{line}`")),
    }
}

/// The `--demo` client: sends `lines`, closes its side, and returns the answers.
async fn demo_client(address: SocketAddr, lines: Vec<String>) -> io::Result<Vec<String>> {
    let (read, mut write) = TcpStream::connect(address).await?.into_split();
    write.write_all(format!("{}\n", lines.join("\n")).as_bytes()).await?;
    write.shutdown().await?;
    let (mut answers, mut reader) = (Vec::new(), BufReader::new(read).lines());
    while let Some(answer) = reader.next_line().await? {
        answers.push(answer);
    }
    Ok(answers)
}
