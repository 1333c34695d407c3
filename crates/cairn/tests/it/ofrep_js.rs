//! The published OpenFeature JavaScript server SDK with its OFREP provider
//! (`@openfeature/server-sdk`, `@openfeature/ofrep-provider`), unmodified,
//! evaluating Cairn's flags over a real socket: every type, metadata, errors,
//! a disabled flag, the path prefix, and bulk evaluation with its ETag
//! (`tests/js/ofrep_check.mjs`, expectations written by hand there).

use std::time::Duration;

use crate::harness::{write_file, Server};
use crate::js::{self, flagd_document, MAX_ITEMS_FIVE};

#[test]
fn flags_through_the_published_javascript_ofrep_provider() {
    if !js::clients_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::sqlite(&dir.path().join("data"));
    let admin = server.admin_token();
    let cli = server.cli(&admin);
    cli.ok(&["app", "create", "shop"]);
    let file = write_file(dir.path(), "flags.json", &flagd_document().to_string());
    cli.ok(&["flag", "import", &file, "--app", "shop", "--env", "prod"]);
    let sdk = cli.json(&[
        "token", "create", "--name", "js", "--sdk", "--app", "shop", "--env", "prod",
    ]);

    let run = js::run_driver(
        "ofrep_check.mjs",
        &[
            ("CAIRN_URL", &server.addr),
            ("CAIRN_SDK_TOKEN", sdk["token"].as_str().unwrap()),
            ("CAIRN_ADMIN_TOKEN", &admin),
        ],
        Duration::from_secs(90),
        |step| {
            assert_eq!(step, "set-maxItems-five");
            cli.ok(&[
                "flag",
                "set",
                "maxItems",
                "--app",
                "shop",
                "--env",
                "prod",
                "--value",
                MAX_ITEMS_FIVE,
            ]);
        },
    );
    assert!(
        run.passed(),
        "the JavaScript OFREP provider check failed:\n{run}\nserver log:\n{}",
        server.log()
    );
}
