//! Heartbeats through the real agent: `POST /push/PACK/NAME` with the token
//! keeps the check green, a wrong or missing token is refused, and a missed
//! beat turns the check red. The token never shows in any output.

use std::time::Duration;

use crate::support::agent::AgentProcess;
use crate::support::http::request;
use crate::support::tempdir;

const TOKEN: &str = "canary-push-token-4f1c";

#[test]
fn pushes_keep_the_check_green_and_a_missed_beat_turns_it_red() {
    let dir = tempdir("hb-pack");
    std::fs::write(
        dir.path().join("hb.yaml"),
        "pack: hb\nchecks:\n  - name: cron\n    kind: heartbeat\n    interval: 200ms\n    timeout: 100ms\n    heartbeat: { period: 1s, grace: 0s, token: \"${HP_TEST_PUSH_TOKEN}\" }\n  - name: other\n    kind: heartbeat\n    heartbeat: { period: 1h, token: \"${HP_TEST_PUSH_TOKEN}\" }\n",
    )
    .unwrap();
    let agent = AgentProcess::start_with_env(
        &["--checks", dir.path().to_str().unwrap()],
        &[("HP_TEST_PUSH_TOKEN", TOKEN)],
    );
    let push = |path: &str, headers: &[(&str, &str)]| {
        request("POST", &format!("{}{path}", agent.url()), headers, b"")
            .unwrap()
            .status
    };
    let bearer = format!("Bearer {TOKEN}");

    assert_eq!(push("/push/hb/cron", &[]), 401, "no token");
    assert_eq!(
        push(
            "/push/hb/cron",
            &[("Authorization", "Bearer wrong-token-000")]
        ),
        401
    );
    assert_eq!(push("/push/hb/nope", &[("Authorization", &bearer)]), 404);
    assert_eq!(
        request("GET", &format!("{}/push/hb/cron", agent.url()), &[], b"")
            .unwrap()
            .status,
        405
    );
    assert_eq!(push("/push/hb/cron", &[("Authorization", &bearer)]), 202);
    assert_eq!(
        push(&format!("/push/hb/cron?token={TOKEN}"), &[]),
        202,
        "token in the query"
    );

    let probe = agent.get("/probe?check=hb/cron").text();
    assert!(probe.contains("probe_success 1"), "{probe}");

    // Stop pushing: within period + grace + an interval the check fails.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let api = agent.get("/api/v1/checks").json();
        let cron = api["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "cron")
            .unwrap()
            .clone();
        if cron["state"] == "failing" {
            assert!(
                cron["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("no heartbeat for"),
                "{cron}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the check never failed: {cron}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for path in [
        "/metrics",
        "/api/v1/checks",
        "/",
        "/probe?check=hb/cron&debug=true",
    ] {
        assert!(
            !agent.get(path).text().contains(TOKEN),
            "{path} leaks the token"
        );
    }
    assert!(
        !agent.log_tail(200).contains(TOKEN),
        "the log leaks the token"
    );
}
