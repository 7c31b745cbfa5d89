//! The YAML reader with positions and its deserializer, for every file type
//! the agent reads: pack files, the agent config, web-config files. Any
//! text, never a panic; every error has a position inside the text.
#![no_main]

use healthprobe::checks::CheckSpec;
use healthprobe::config::model::{AgentConfig, PackFile, PackHeader};
use healthprobe::config::yaml::{self, Node, Value};
use healthprobe::web_config::WebConfigFile;
use libfuzzer_sys::fuzz_target;

fn walk(node: &Node, path: String, paths: &mut Vec<String>) {
    if paths.len() > 64 {
        return;
    }
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let p = if path.is_empty() {
                    k.as_str().unwrap_or("?").to_string()
                } else {
                    format!("{path}.{}", k.as_str().unwrap_or("?"))
                };
                paths.push(p.clone());
                walk(v, p, paths);
            }
        }
        Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                paths.push(p.clone());
                walk(v, p, paths);
            }
        }
        Value::Scalar { .. } => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // YAML breaks lines at CR too (alone or in CRLF): count both.
    let lines = text.split(['\n', '\r']).count().max(1);
    let node = match yaml::parse(text) {
        Ok(Some(node)) => node,
        Ok(None) => return,
        Err((pos, _)) => {
            assert!(pos.line <= lines + 1, "error at line {} of {lines}", pos.line);
            return;
        }
    };
    let id = |s: &str| Ok(s.to_string());
    let check = |e: yaml::DeError| {
        if let Some(pos) = e.pos {
            assert!(pos.line >= 1 && pos.line <= lines + 1, "{pos:?} of {lines}");
        }
    };
    let _ = yaml::from_node::<PackFile>(&node, "", &id).map_err(check);
    let _ = yaml::from_node::<PackHeader>(&node, "", &id).map_err(check);
    let _ = yaml::from_node::<AgentConfig>(&node, "", &id).map_err(check);
    let _ = yaml::from_node::<WebConfigFile>(&node, "", &id).map_err(check);
    let _ = yaml::from_node::<CheckSpec>(&node, "", &id).map_err(check);
    let mut paths = Vec::new();
    walk(&node, String::new(), &mut paths);
    for p in &paths {
        let _ = node.find(p);
        let _ = node.find_key(p);
    }
    let _ = node.find("checks[0].http.expect.status[1]");
});
