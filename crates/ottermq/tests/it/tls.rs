//! TLS: lapin over amqps with a test CA made here (rcgen), a client that does not trust the
//! broker's certificate is refused, client-certificate verification (required, wrong CA,
//! missing), and the management API over HTTPS.

use crate::common;
use common::*;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate signed by `ca`: (certificate PEM, PKCS#8 key PEM).
fn leaf(ca: &Ca, name: &str, purpose: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut params =
        CertificateParams::new(vec![name.to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    params.extended_key_usages.push(purpose);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write pem");
    p
}

struct Pki {
    dir: PathBuf,
    ca: Ca,
    tls: ottermq_broker::tls::TlsSettings,
}

fn pki(tag: &str, verify_clients: bool) -> Pki {
    let dir = std::env::temp_dir().join(format!("ottermq-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = new_ca("OtterMQ test CA");
    let (cert, key) = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = ottermq_broker::tls::TlsSettings {
        cert_file: write(&dir, "server.pem", &cert),
        key_file: write(&dir, "server.key", &key),
        ca_file: verify_clients.then(|| write(&dir, "ca.pem", &ca.pem)),
        fail_if_no_peer_cert: verify_clients,
    };
    Pki { dir, ca, tls }
}

async fn start(p: &Pki, management_tls: bool) -> ottermq::RunningServer {
    let tls = p.tls.clone();
    ottermq::testing::start_test_broker_with(move |s| {
        s.amqps_addr = Some("127.0.0.1:0".parse().expect("addr"));
        s.tls = Some(tls);
        s.management_tls = management_tls;
    })
    .await
}

async fn amqps(
    server: &ottermq::RunningServer,
    ca_pem: Option<&str>,
    identity: Option<(String, String)>,
) -> Result<lapin::Connection, lapin::Error> {
    let addr = server.amqps_addr.expect("amqps listener");
    let uri = format!("amqps://guest:guest@127.0.0.1:{}/%2f", addr.port());
    let cfg = OwnedTLSConfig {
        identity: identity.map(|(pem, key)| OwnedIdentity::PKCS8 {
            pem: pem.into_bytes(),
            key: key.into_bytes(),
        }),
        cert_chain: ca_pem.map(str::to_string),
    };
    within(
        "amqps connect",
        lapin::Connection::connect_with_config(
            &uri,
            Default::default(),
            cfg,
            lapin::runtime::default_runtime().expect("runtime"),
        ),
    )
    .await
}

async fn round_trip(conn: &lapin::Connection) {
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare("tls-q".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    within(
        "publish",
        ch.basic_publish(
            "".into(),
            "tls-q".into(),
            Default::default(),
            b"over tls",
            Default::default(),
        ),
    )
    .await
    .unwrap();
    let mut got = None;
    for _ in 0..50 {
        got = within("get", ch.basic_get("tls-q".into(), Default::default()))
            .await
            .unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(got.expect("message").delivery.data, b"over tls");
}

#[tokio::test]
async fn lapin_over_amqps_with_a_test_ca_and_an_untrusted_certificate_refused() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let p = pki("basic", false);
    let server = start(&p, false).await;
    let conn = amqps(&server, Some(&p.ca.pem), None)
        .await
        .expect("amqps with the test CA");
    round_trip(&conn).await;
    // A client that trusts another CA refuses the broker's certificate.
    let other = new_ca("Some other CA");
    assert!(
        amqps(&server, Some(&other.pem), None).await.is_err(),
        "a client accepted a certificate its CA did not sign"
    );
    // The plain listener still serves plain AMQP.
    let plain = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    assert!(plain.status().connected());
    round_trip(&conn).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn client_certificates_are_verified_when_required() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let p = pki("mtls", true);
    let server = start(&p, false).await;
    let good = leaf(&p.ca, "client", ExtendedKeyUsagePurpose::ClientAuth);
    let conn = amqps(&server, Some(&p.ca.pem), Some(good))
        .await
        .expect("client certificate from the trusted CA");
    round_trip(&conn).await;
    assert!(
        amqps(&server, Some(&p.ca.pem), None).await.is_err(),
        "a client without a certificate was admitted"
    );
    let rogue_ca = new_ca("Rogue CA");
    let rogue = leaf(&rogue_ca, "client", ExtendedKeyUsagePurpose::ClientAuth);
    assert!(
        amqps(&server, Some(&p.ca.pem), Some(rogue)).await.is_err(),
        "a client certificate from an unknown CA was admitted"
    );
    round_trip(&conn).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&p.dir);
}

/// A TLS connection to `addr` (as `localhost`) with a rustls client trusting `ca_pem`, the
/// handshake complete and nothing sent over it yet.
async fn tls_connect(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = within("tcp", tokio::net::TcpStream::connect(addr))
        .await
        .expect("tcp");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    within("tls", connector.connect(name, tcp))
        .await
        .expect("tls handshake")
}

/// One HTTP/1.1 request over TLS with a rustls client trusting `ca_pem`; the status line.
async fn https_status(addr: std::net::SocketAddr, ca_pem: &str, auth: Option<&str>) -> String {
    let mut tls = tls_connect(addr, ca_pem).await;
    let mut req =
        "GET /api/overview HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_string();
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: Basic {a}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = within("read", tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn management_api_over_https() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let p = pki("https", false);
    let server = start(&p, true).await;
    let http = server.http_addr.expect("management listener");
    // guest:guest
    let ok = https_status(http, &p.ca.pem, Some("Z3Vlc3Q6Z3Vlc3Q=")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let denied = https_status(http, &p.ca.pem, None).await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(http).await.expect("tcp");
    tcp.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = within("read", tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&p.dir);
}

/// A TLS record header announcing a 512-byte ClientHello, and its first few bytes only.
const PARTIAL_CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, // handshake record, TLS 1.0 framing, 512 bytes
    0x01, 0x00, 0x01, 0xfc, // ClientHello, 508 bytes
    0x03, 0x03, // client version TLS 1.2, then nothing more
];

#[tokio::test]
async fn stalled_tls_handshakes_are_dropped_after_the_handshake_timeout() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let logs = logs::capture();
    let p = pki("stall", false);
    let tls = p.tls.clone();
    let server = ottermq::testing::start_test_broker_with(move |s| {
        s.amqps_addr = Some("127.0.0.1:0".parse().expect("addr"));
        s.tls = Some(tls);
        s.management_tls = true;
        s.broker.handshake_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let amqps_addr = server.amqps_addr.expect("amqps listener");
    let https_addr = server.http_addr.expect("management listener");
    let started = std::time::Instant::now();
    // On each TLS port: one client that sends nothing, one that stalls inside its ClientHello.
    let mut stalled = Vec::new();
    for addr in [amqps_addr, https_addr] {
        let silent = Raw::connect(addr).await;
        let mut half = Raw::connect(addr).await;
        half.send_bytes(PARTIAL_CLIENT_HELLO).await;
        stalled.push((addr, silent));
        stalled.push((addr, half));
    }
    // A well-behaved amqps client is served meanwhile.
    let conn = amqps(&server, Some(&p.ca.pem), None)
        .await
        .expect("amqps while others stall");
    round_trip(&conn).await;
    for (addr, r) in &mut stalled {
        let port = r.sock.local_addr().expect("local").port();
        assert!(
            r.closed().await,
            "a stalled TLS client of {addr} was not dropped"
        );
        let listener = if *addr == amqps_addr {
            "listener=\"amqps\""
        } else {
            "listener=\"management\""
        };
        logs.line_with(&[
            "TLS handshake timed out",
            listener,
            &format!("peer=127.0.0.1:{port}"),
        ])
        .await;
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "dropped only after {:?} (timeout 1 s)",
        started.elapsed()
    );
    // The connection made meanwhile still works, and HTTPS still serves a real client.
    round_trip(&conn).await;
    let ok = https_status(https_addr, &p.ca.pem, Some("Z3Vlc3Q6Z3Vlc3Q=")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&p.dir);
}

/// A client that completes the TLS handshake on amqps and then sends no AMQP protocol header
/// is dropped when the (shared) handshake timeout expires, as a silent plain client is, and
/// one that sends the header but never answers connection.start is dropped too.
#[tokio::test]
async fn amqps_clients_silent_after_the_tls_handshake_are_dropped() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let logs = logs::capture();
    let p = pki("post-tls-stall", false);
    let tls = p.tls.clone();
    let server = ottermq::testing::start_test_broker_with(move |s| {
        s.amqps_addr = Some("127.0.0.1:0".parse().expect("addr"));
        s.tls = Some(tls);
        s.broker.handshake_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let addr = server.amqps_addr.expect("amqps listener");
    let silent = tls_connect(addr, &p.ca.pem).await;
    let mut header_only = tls_connect(addr, &p.ca.pem).await;
    header_only
        .write_all(ottermq_protocol::PROTOCOL_HEADER)
        .await
        .expect("header");
    let conn = amqps(&server, Some(&p.ca.pem), None)
        .await
        .expect("amqps while others stall");
    round_trip(&conn).await;
    for (what, mut s) in [("silent", silent), ("header only", header_only)] {
        let port = s.get_ref().0.local_addr().expect("local").port();
        let mut out = Vec::new();
        // connection.start (for the second) and then the end of the stream.
        within(what, s.read_to_end(&mut out))
            .await
            .unwrap_or_else(|e| panic!("{what}: the stream ended with an error: {e}"));
        logs.line_with(&["handshake timed out", &format!("peer=127.0.0.1:{port}")])
            .await;
    }
    round_trip(&conn).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&p.dir);
}
