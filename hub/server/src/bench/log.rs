//! `tributary bench log`: the log against Redis Streams and NATS JetStream.
//!
//! Same records for all three: 16-byte keys, 100-byte values, batches of
//! 1,000. The log uses 4 partitions with `fsync: {interval_ms: 100}`; the
//! append figure covers encoding, writing and the final sync (every record
//! durable). Redis gets pipelined XADDs of 1,000; JetStream gets async
//! publishes to a file-storage stream, with every ack awaited.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use tributary_log::{BatchBuilder, FsyncPolicy, Log, LogOptions, RecordIn, TopicConfig};

use super::{rate, ratio};

#[derive(Debug, clap::Args)]
pub struct LogBenchArgs {
    /// Records to write.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Records per batch (and per Redis pipeline).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Partitions of the log topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Directory for the log (default: a temporary directory, removed after).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Redis URL for the reference.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis_url: String,
    /// NATS server for the reference.
    #[arg(long, default_value = "127.0.0.1:4222")]
    nats_url: String,
}

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;

struct Data {
    keys: Vec<[u8; KEY_LEN]>,
    values: Vec<[u8; VALUE_LEN]>,
}

fn make_data(n: u64) -> Data {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut keys = Vec::with_capacity(n as usize);
    let mut values = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(format!("key-{i:012}").as_bytes());
        keys.push(k);
        let mut v = [0u8; VALUE_LEN];
        rng.fill(&mut v[..]);
        values.push(v);
    }
    Data { keys, values }
}

pub fn run(args: LogBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.records > 0 && args.batch > 0,
        "--records and --batch must be positive"
    );
    let data = make_data(args.records);
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("tributary-bench-log")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };

    let (append, read) = bench_log(&args, &data, &dir)?;
    eprintln!("log append: {append} rec/s, read: {read} rec/s");
    let redis = bench_redis(&args, &data)
        .context("redis reference (is Redis running on the --redis-url?)")?;
    eprintln!("redis xadd: {redis} rec/s");
    let jetstream = bench_jetstream(&args, &data)
        .context("JetStream reference (is nats-server running with -js?)")?;
    eprintln!("jetstream publish: {jetstream} rec/s");
    println!(
        "log: append {append} rec/s, read {read} rec/s, redis-xadd {redis} rec/s, jetstream {jetstream} rec/s, append/redis {}x, append/jetstream {}x",
        ratio(append, redis),
        ratio(append, jetstream)
    );
    Ok(())
}

fn bench_log(
    args: &LogBenchArgs,
    data: &Data,
    dir: &std::path::Path,
) -> anyhow::Result<(u64, u64)> {
    let log = Log::open_with(dir, LogOptions::default())?;
    let topic_name = format!("bench-{}", std::process::id());
    let topic = log.create_topic(
        &topic_name,
        TopicConfig {
            partitions: args.partitions,
            fsync: FsyncPolicy::interval(100),
            ..TopicConfig::default()
        },
    )?;
    let n = args.records as usize;
    let parts = topic.partitions();
    let ts = tributary_log::now_ms();

    // Appends: batch i goes to partition i mod P; two threads (one per
    // core) each own half of the partitions, as a pipeline's sources would.
    let threads = 2.min(parts.len());
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> anyhow::Result<()> {
                    let mut start = 0usize;
                    let mut batch_no = 0usize;
                    while start < n {
                        let end = (start + args.batch).min(n);
                        let p = batch_no % parts.len();
                        if p % threads == t {
                            let mut b = BatchBuilder::with_capacity((end - start) * 136);
                            for i in start..end {
                                b.push(RecordIn {
                                    timestamp: ts,
                                    key: Some(&data.keys[i]),
                                    value: Some(&data.values[i]),
                                    headers: &[],
                                });
                            }
                            parts[p].append(b)?;
                        }
                        start = end;
                        batch_no += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("append thread panicked"))??;
        }
        Ok(())
    })?;
    for p in parts {
        p.flush()?;
    }
    let append_secs = started.elapsed().as_secs_f64();
    let written: u64 = parts.iter().map(|p| p.durable_watermark()).sum();
    anyhow::ensure!(
        written == args.records,
        "log holds {written} durable records, expected {}",
        args.records
    );

    // Reads: every partition from offset 0, every record decoded; the sum
    // of key and value bytes is checked so nothing is skipped.
    let started = Instant::now();
    let totals = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> anyhow::Result<(u64, u64)> {
                    let (mut count, mut bytes) = (0u64, 0u64);
                    for p in parts.iter().skip(t).step_by(threads) {
                        let mut offset = 0;
                        let hw = p.high_watermark();
                        while offset < hw {
                            for batch in p.read(offset, 1 << 20)? {
                                for r in batch.records()?.iter() {
                                    let r = r?;
                                    if r.offset < offset {
                                        continue;
                                    }
                                    count += 1;
                                    bytes += r.key.map_or(0, |k| k.len()) as u64
                                        + r.value.map_or(0, |v| v.len()) as u64;
                                    offset = r.offset + 1;
                                }
                            }
                        }
                    }
                    Ok((count, bytes))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("read thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let read_secs = started.elapsed().as_secs_f64();
    let count: u64 = totals.iter().map(|t| t.0).sum();
    let bytes: u64 = totals.iter().map(|t| t.1).sum();
    anyhow::ensure!(
        count == args.records,
        "read {count} records, expected {}",
        args.records
    );
    anyhow::ensure!(
        bytes == args.records * (KEY_LEN + VALUE_LEN) as u64,
        "read {bytes} key and value bytes, expected {}",
        args.records * (KEY_LEN + VALUE_LEN) as u64
    );
    Ok((rate(args.records, append_secs), rate(count, read_secs)))
}

fn bench_redis(args: &LogBenchArgs, data: &Data) -> anyhow::Result<u64> {
    let client = redis::Client::open(args.redis_url.as_str())?;
    let mut con = client.get_connection()?;
    let stream = format!("tributary-bench-{}", std::process::id());
    let _: () = redis::cmd("DEL").arg(&stream).query(&mut con)?;
    let n = args.records as usize;
    let started = Instant::now();
    let mut start = 0;
    while start < n {
        let end = (start + args.batch).min(n);
        let mut pipe = redis::pipe();
        for i in start..end {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("k")
                .arg(&data.keys[i][..])
                .arg("v")
                .arg(&data.values[i][..])
                .ignore();
        }
        let _: () = pipe.query(&mut con)?;
        start = end;
    }
    let secs = started.elapsed().as_secs_f64();
    let len: u64 = redis::cmd("XLEN").arg(&stream).query(&mut con)?;
    let _: () = redis::cmd("DEL").arg(&stream).query(&mut con)?;
    anyhow::ensure!(
        len == args.records,
        "redis stream holds {len} entries, expected {}",
        args.records
    );
    Ok(rate(args.records, secs))
}

fn bench_jetstream(args: &LogBenchArgs, data: &Data) -> anyhow::Result<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use async_nats::jetstream::{self, stream};
        let client = async_nats::connect(args.nats_url.as_str()).await?;
        let js = jetstream::new(client);
        let name = format!("TRIBUTARY_BENCH_{}", std::process::id());
        let subject = format!("tributary.bench.{}", std::process::id());
        let _ = js.delete_stream(&name).await;
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("create stream: {e}"))?;
        let n = args.records as usize;
        let started = Instant::now();
        let mut start = 0;
        while start < n {
            let end = (start + args.batch).min(n);
            let mut acks = Vec::with_capacity(end - start);
            for i in start..end {
                let mut payload = Vec::with_capacity(KEY_LEN + VALUE_LEN);
                payload.extend_from_slice(&data.keys[i]);
                payload.extend_from_slice(&data.values[i]);
                let ack = js
                    .publish(subject.clone(), payload.into())
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
            }
            start = end;
        }
        let secs = started.elapsed().as_secs_f64();
        let mut s = js
            .get_stream(&name)
            .await
            .map_err(|e| anyhow::anyhow!("get stream: {e}"))?;
        let stored = s
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("stream info: {e}"))?
            .state
            .messages;
        let _ = js.delete_stream(&name).await;
        anyhow::ensure!(
            stored == args.records,
            "JetStream stream holds {stored} messages, expected {}",
            args.records
        );
        Ok(rate(args.records, secs))
    })
}
