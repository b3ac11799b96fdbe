//! The real binary under SIGTERM and SIGINT: every client gets connection.close with
//! CONNECTION_FORCED (320), and the process exits cleanly (status 0).

mod common;
use common::*;
use ottermq_protocol::Method;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn_broker(data: &std::path::Path) -> (Child, SocketAddr) {
    let amqp = free_port();
    let child = Command::new(
        std::env::var("OTTERMQ_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ottermq").into()),
    )
    .args(["--bind", "127.0.0.1", "--amqp-port", &amqp.to_string()])
    .args(["--http-port", &free_port().to_string()])
    .arg("--data-dir")
    .arg(data)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn ottermq");
    (child, SocketAddr::from(([127, 0, 0, 1], amqp)))
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("broker did not exit after the signal");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn signal_closes_clients_with_320(sig: &str) {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // about OtterMQ's own process
    }
    let data = std::env::temp_dir().join(format!("ottermq-sig-{}-{sig}", std::process::id()));
    let (mut child, addr) = spawn_broker(&data);
    wait_listening(addr).await;
    let mut a = Raw::handshake(addr, 0).await;
    let mut b = Raw::handshake(addr, 0).await;
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for raw in [&mut a, &mut b] {
        match within("connection.close", raw.method()).await {
            Some((0, Method::ConnectionClose(c))) => {
                assert_eq!(c.reply_code, 320, "{c:?}");
                raw.send(0, &Method::ConnectionCloseOk).await;
            }
            other => panic!("expected connection.close 320, got {other:?}"),
        }
    }
    let st = wait_exit(&mut child).await;
    assert!(st.success(), "exit status {st:?}");
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn sigterm_closes_clients_with_connection_forced_and_exits_cleanly() {
    signal_closes_clients_with_320("TERM").await;
}

#[tokio::test]
async fn sigint_closes_clients_with_connection_forced_and_exits_cleanly() {
    signal_closes_clients_with_320("INT").await;
}
