//! The built-in `openhands` pack against a setup that looks real, healthy then
//! broken, through the real binary (`healthprobe check --pack openhands`,
//! vars given with `--var`): `config.toml` in the OpenHands root, a private
//! dockerd with `openhands-runtime-*` sandboxes and the `openhands-app`
//! container (the Docker socket mounted, `--add-host
//! host.docker.internal:host-gateway`), the server process renamed as uvicorn
//! runs it with or without a fixed JWT_SECRET, its `/alive` endpoint, and a
//! local LLM server (nginx answering Ollama's `/v1/models` and `/api/tags`).
//!
//! Broken, in two steps: first everything but the Docker engine (a sandbox
//! exited, the app container started without the socket and the host
//! gateway, the server down, the LLM endpoint answering 404 "Resource not
//! found", sessions in memory, no JWT_SECRET); then the engine stopped too,
//! which is the guide's first symptom.

use std::path::PathBuf;

use crate::pack_util::{assert_broken_report, check_json, chmod, fixture, titled_process, write};
use crate::support::dockerd::Dockerd;
use crate::support::nginx::Nginx;
use crate::support::process::ServerProcess;
use crate::support::{free_port, tempdir};

const ENABLED: [&str; 7] = [
    "docker_reachable",
    "app_alive",
    "runtime_containers",
    "app_container",
    "llm_endpoint",
    "file_store_persistent",
    "jwt_secret_fixed",
];
const MODEL: &str = "qwen2.5-coder:7b";

struct Setup {
    dir: tempfile::TempDir,
    docker: Dockerd,
    app: Nginx,
    llm: Nginx,
    server: Option<ServerProcess>,
    server_port: u16,
}

impl Setup {
    fn root(&self) -> PathBuf {
        self.dir.path().join("openhands")
    }

    fn healthy() -> Setup {
        let dir = tempdir("pack-openhands");
        chmod(dir.path(), 0o755);
        let docker = Dockerd::start();
        docker.busybox_image();
        let app = Nginx::start(&fixture("openhands/app.conf"));
        write(
            &dir.path().join("llm.conf"),
            &fixture("openhands/llm-healthy.conf"),
        );
        let llm = Nginx::start(&format!(
            "include {};",
            dir.path().join("llm.conf").display()
        ));
        let mut s = Setup {
            dir,
            docker,
            app,
            llm,
            server: None,
            server_port: free_port(),
        };
        let state = s.root().join("state");
        std::fs::create_dir_all(&state).unwrap();
        s.write_config("config-healthy.toml");
        let sock = format!("{}:/var/run/docker.sock", s.docker.socket_path().display());
        s.docker.run_busybox(
            "openhands-app",
            &[
                "-v",
                &sock,
                "--add-host",
                "host.docker.internal:host-gateway",
            ],
            &["sleep", "600"],
        );
        s.docker
            .run_busybox("openhands-runtime-5f1c2a9e", &[], &["sleep", "600"]);
        s.start_server(Some("3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e"));
        s
    }

    fn write_config(&self, name: &str) {
        write(
            &self.root().join("config.toml"),
            &fixture(&format!("openhands/{name}"))
                .replace("@STATE@", &self.root().join("state").to_string_lossy()),
        );
    }

    /// The server as `docker run ... openhands` starts it.
    fn start_server(&mut self, jwt_secret: Option<&str>) {
        let title = format!(
            "/app/.venv/bin/python /app/.venv/bin/uvicorn openhands.server.listen:app --host 0.0.0.0 --port {}",
            self.server_port
        );
        let mut env = vec![
            (
                "SANDBOX_RUNTIME_CONTAINER_IMAGE",
                "docker.all-hands.dev/all-hands-ai/runtime:0.9-nikolaik",
            ),
            ("LOG_ALL_EVENTS", "true"),
        ];
        if let Some(s) = jwt_secret {
            env.push(("JWT_SECRET", s));
        }
        self.server = None;
        self.server = Some(titled_process(&title, None, &env, self.dir.path()));
    }

    fn args(&self) -> Vec<String> {
        let var = |k: &str, v: String| ["--var".to_string(), format!("openhands.{k}={v}")];
        let mut a = vec!["--pack".to_string(), "openhands".to_string()];
        for pair in [
            var("root", self.root().display().to_string()),
            var("app_url", self.app.url("")),
            var("docker_host", self.docker.host()),
            var("llm_base_url", self.llm.url("/v1")),
            var("llm_model", MODEL.to_string()),
            var(
                "app_process",
                format!(
                    r"openhands\.server\.listen:app --host 0\.0\.0\.0 --port {}\b",
                    self.server_port
                ),
            ),
        ] {
            a.extend(pair);
        }
        a
    }

    /// Everything broken but the Docker engine.
    fn break_all_but_docker(&mut self) {
        self.docker.docker(&["stop", "openhands-runtime-5f1c2a9e"]);
        self.docker
            .run_busybox("openhands-runtime-9b2e7d41", &[], &["sh", "-c", "exit 1"]);
        self.docker.docker(&["rm", "-f", "openhands-app"]);
        self.docker
            .run_busybox("openhands-app", &[], &["sleep", "600"]);
        self.app.stop();
        write(
            &self.dir.path().join("llm.conf"),
            &fixture("openhands/llm-broken.conf"),
        );
        self.llm.start_again();
        self.write_config("config-broken.toml");
        self.start_server(None);
        // The exited sandbox must be seen as exited.
        let d = &self.docker;
        self.server
            .as_ref()
            .unwrap()
            .wait_ready(std::time::Duration::from_secs(30), || {
                match d.try_docker(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}}",
                    "openhands-runtime-9b2e7d41",
                ]) {
                    Ok(s) if s == "exited" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            });
    }
}

#[test]
fn openhands_pack_flips_between_a_healthy_and_a_broken_setup() {
    let mut s = Setup::healthy();
    let args = s.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let healthy = check_json(&args);
    healthy.assert_all_pass(&ENABLED);
    let msg =
        |r: &crate::pack_util::Report, n: &str| r.get(n)["message"].as_str().unwrap().to_string();
    assert!(
        msg(&healthy, "runtime_containers")
            .contains("1 container named `openhands-runtime-*` (1 running)"),
        "{}",
        msg(&healthy, "runtime_containers")
    );
    assert!(msg(&healthy, "jwt_secret_fixed").contains("JWT_SECRET as expected"));
    assert!(!format!("{:?}", healthy.checks).contains("3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e"));

    // Ollama's own API, with the model named.
    let mut ollama = args.clone();
    let base = format!("openhands.llm_base_url={}", s.llm.url(""));
    ollama.extend([
        "--var",
        &base,
        "--var",
        "openhands.llm_models_path=/api/tags",
    ]);
    let r = check_json(&ollama);
    assert_eq!(
        r.get("llm_endpoint")["state"],
        "passing",
        "{}",
        r.get("llm_endpoint")
    );

    s.break_all_but_docker();
    let broken = check_json(&args);
    broken.assert_failures(&[
        ("app_alive", "connection_refused", &["refused"]),
        (
            "runtime_containers",
            "assertion_failed",
            &[
                "openhands-runtime-9b2e7d41",
                "openhands-runtime-5f1c2a9e",
                "exited",
            ],
        ),
        (
            "app_container",
            "assertion_failed",
            &[
                "/var/run/docker.sock is not mounted",
                "no extra host host.docker.internal:host-gateway",
            ],
        ),
        (
            "llm_endpoint",
            "assertion_failed",
            &[
                "status is 404 Not Found, expected 200",
                "Resource not found",
            ],
        ),
        (
            "file_store_persistent",
            "assertion_failed",
            &[
                "`core.file_store` is `memory`, expected `local`",
                "`core.file_store_path` is `./cache`, which is not an absolute path",
            ],
        ),
        (
            "jwt_secret_fixed",
            "assertion_failed",
            &["JWT_SECRET is not set"],
        ),
    ]);
    assert_eq!(broken.get("docker_reachable")["state"], "passing");

    // The engine stopped: the guide's "Error creating controller" and its
    // FileNotFoundError: the socket is gone.
    s.docker.stop();
    let broken = check_json(&args);
    broken.assert_failures(&[
        (
            "docker_reachable",
            "not_found",
            &[
                "docker.sock does not exist",
                "the Docker daemon is not running",
            ],
        ),
        (
            "runtime_containers",
            "not_found",
            &[
                "docker.sock does not exist",
                "the Docker daemon is not running",
            ],
        ),
        (
            "app_container",
            "not_found",
            &[
                "docker.sock does not exist",
                "the Docker daemon is not running",
            ],
        ),
        ("app_alive", "connection_refused", &["refused"]),
        ("llm_endpoint", "assertion_failed", &["404"]),
        ("file_store_persistent", "assertion_failed", &["memory"]),
        (
            "jwt_secret_fixed",
            "assertion_failed",
            &["JWT_SECRET is not set"],
        ),
    ]);

    let text = assert_broken_report(
        &args,
        &[
            (
                "docker_reachable",
                &["docker ps", "FileNotFoundError", "sudo usermod -aG docker"],
            ),
            ("app_alive", &["docker logs openhands-app"]),
            ("runtime_containers", &["docker rm -f"]),
            (
                "app_container",
                &["--add-host host.docker.internal:host-gateway"],
            ),
            (
                "llm_endpoint",
                &["base_url", "Resource not found", "Ollama"],
            ),
            (
                "file_store_persistent",
                &["file_store=\"local\"", "file_store_path"],
            ),
            ("jwt_secret_fixed", &["export JWT_SECRET=A_CONST_VALUE"]),
        ],
    );
    assert!(
        text.contains("guide: https://docs.all-hands.dev/usage/troubleshooting/troubleshooting#unable-to-connect-to-docker"),
        "{text}"
    );
    assert!(
        text.contains("7 of 7 checks failed (3 critical, 4 warning)."),
        "{text}"
    );
}
