//! coffer-probe: the image's HEALTHCHECK. The runtime image (distroless) has
//! no shell and no curl, so this std-only program sends one HTTP/1.1 GET to
//! the local server and exits 0 on a 2xx answer, 1 otherwise.
//!
//!   coffer-probe [PATH] [HOST:PORT]
//!
//! PATH defaults to /health/ready. HOST:PORT defaults to COFFER_BIND with an
//! unspecified address (0.0.0.0, [::]) replaced by loopback, else
//! 127.0.0.1:8080. Built in the image with plain rustc (no crates):
//!   rustc --edition 2021 -C opt-level=s -C strip=symbols healthcheck.rs -o coffer-probe

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

fn target(explicit: Option<String>) -> String {
    if let Some(addr) = explicit {
        return addr;
    }
    let bind = std::env::var("COFFER_BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    match bind.rsplit_once(':') {
        Some((host, port)) => {
            let host = match host {
                "" | "0.0.0.0" => "127.0.0.1",
                "[::]" | "::" => "[::1]",
                other => other,
            };
            format!("{host}:{port}")
        }
        None => "127.0.0.1:8080".to_owned(),
    }
}

fn probe(addr: &str, path: &str) -> Result<u16, String> {
    let socket: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: coffer-probe\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // The status line fits in the first read of a small buffer; read until
    // it is complete or the peer closes.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("no HTTP status line from {addr}"))?;
    Ok(status)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/health/ready".to_owned());
    let addr = target(args.next());
    match probe(&addr, &path) {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("coffer-probe: {path} answered {status}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("coffer-probe: {error}");
            ExitCode::FAILURE
        }
    }
}
