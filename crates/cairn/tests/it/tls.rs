//! HTTPS with rustls, and the CLI trusting a given CA.

use crate::harness::{write_file, ServeOpts, Server};

#[test]
fn https_with_a_self_signed_certificate() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = write_file(dir.path(), "cert.pem", &certified.cert.pem());
    let key = write_file(dir.path(), "key.pem", &certified.key_pair.serialize_pem());
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        ServeOpts {
            extra: vec!["--tls-cert".into(), cert.clone(), "--tls-key".into(), key],
            ..ServeOpts::default()
        },
    );
    assert!(server.addr.starts_with("https://"), "{}", server.addr);
    let cli = server.cli(&server.admin_token());
    let ok = cli.ok(&["--ca-cert", &cert, "app", "create", "billing"]);
    assert!(ok.stdout.contains("billing"), "{ok}");
    let apps = cli.json(&["--ca-cert", &cert, "app", "list"]);
    assert_eq!(apps[0]["name"], "billing");
    // Without trusting the certificate the CLI refuses to talk.
    let refused = cli.expect(1, &["app", "list"]);
    assert!(
        refused.stderr.contains("cannot reach the server"),
        "{refused}"
    );
    // Plain HTTP to the TLS port does not work either.
    let plain = server.addr.replacen("https://", "http://", 1);
    let http = crate::harness::Cli {
        addr: plain,
        token: Some(server.admin_token()),
    };
    http.expect(1, &["app", "list"]);
}
