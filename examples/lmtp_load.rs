//! An LMTP load client for `scripts/bench`: like Postfix's `smtp-source -L`, but it times each
//! message from the end of its DATA (the `.` line sent) to its `250` reply, which is what a
//! delivering Postfix waits for, and prints the rate and the latency percentiles.
//!
//! ```text
//! cargo run --release --example lmtp_load -- HOST:PORT SESSIONS MESSAGES OCTETS FROM RCPT
//! ```
//! Prints one line: `messages=N seconds=S rate=R p50_ms=X p99_ms=Y max_ms=Z`. Every message is
//! different (its number is in the Message-ID and the subject), so a server that recognises
//! redeliveries by content stores each one. Exits non-zero when any reply is not 2xx.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

struct Load {
    addr: String,
    sessions: usize,
    messages: usize,
    octets: usize,
    from: String,
    rcpt: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let load = match parse(&args) {
        Some(load) => load,
        None => {
            eprintln!("usage: lmtp_load HOST:PORT SESSIONS MESSAGES OCTETS FROM RCPT");
            return ExitCode::from(2);
        }
    };
    match run(Arc::new(load)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lmtp_load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Option<Load> {
    let [addr, sessions, messages, octets, from, rcpt] = args else {
        return None;
    };
    Some(Load {
        addr: addr.clone(),
        sessions: sessions.parse().ok().filter(|&n| n > 0)?,
        messages: messages.parse().ok()?,
        octets: octets.parse().ok()?,
        from: from.clone(),
        rcpt: rcpt.clone(),
    })
}

/// Runs the sessions in threads, each taking the next message number until none are left.
fn run(load: Arc<Load>) -> Result<String, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..load.sessions)
        .map(|_| {
            let (load, next) = (load.clone(), next.clone());
            thread::spawn(move || session(&load, &next))
        })
        .collect();
    let mut latencies = Vec::with_capacity(load.messages);
    for t in threads {
        latencies.extend(t.join().map_err(|_| "a session panicked".to_string())??);
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let ms = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1));
        latencies
            .get(i - 1)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(format!(
        "messages={} seconds={seconds:.3} rate={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        ms(0.50),
        ms(0.99),
        ms(1.0),
    ))
}

/// One connection: LHLO, then MAIL/RCPT/DATA per message; returns each message's latency.
fn session(load: &Load, next: &AtomicUsize) -> Result<Vec<Duration>, String> {
    let stream = TcpStream::connect(&load.addr).map_err(|e| format!("{}: {e}", load.addr))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut out = stream.try_clone().map_err(|e| e.to_string())?;
    let mut replies = BufReader::new(stream);
    expect(&mut replies, '2')?;
    send(&mut out, "LHLO lmtp-load\r\n")?;
    expect(&mut replies, '2')?;
    let mut latencies = Vec::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= load.messages {
            break;
        }
        send(&mut out, &format!("MAIL FROM:<{}>\r\n", load.from))?;
        expect(&mut replies, '2')?;
        send(&mut out, &format!("RCPT TO:<{}>\r\n", load.rcpt))?;
        expect(&mut replies, '2')?;
        send(&mut out, "DATA\r\n")?;
        expect(&mut replies, '3')?;
        send(&mut out, &message(load, n))?;
        let sent = Instant::now();
        expect(&mut replies, '2')?;
        latencies.push(sent.elapsed());
    }
    send(&mut out, "QUIT\r\n")?;
    Ok(latencies)
}

/// Message `n`: headers, then lines of `X` up to about `octets`, then the end of DATA.
fn message(load: &Load, n: usize) -> String {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{rcpt}>\r\nMessage-ID: <{n}.{pid}@lmtp-load>\r\n\
         Subject: Backup job failed on dev{device:04} (message {n})\r\n\r\n",
        from = load.from,
        rcpt = load.rcpt,
        pid = std::process::id(),
        device = n % 1000 + 1,
    );
    let line = format!("{}\r\n", "X".repeat(78));
    while m.len() + line.len() <= load.octets {
        m.push_str(&line);
    }
    m.push_str(".\r\n");
    m
}

fn send(out: &mut TcpStream, text: &str) -> Result<(), String> {
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

/// Reads one (possibly multi-line) reply and checks its first digit.
fn expect(replies: &mut BufReader<TcpStream>, class: char) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        if replies.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    if line.starts_with(class) {
        Ok(())
    } else {
        Err(format!("expected {class}xx, got {}", line.trim_end()))
    }
}
