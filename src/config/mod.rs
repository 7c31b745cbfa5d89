//! Configuration: YAML with positions ([`yaml`]), interpolation ([`interp`]),
//! the apps' `.env` files ([`dotenv`]), the file types ([`model`]) and the
//! loader that puts them together ([`load()`]).

pub mod condition;
pub mod dotenv;
pub mod duration;
pub mod error;
pub mod interp;
pub mod load;
pub mod model;
pub mod yaml;

pub use error::{ConfigError, ConfigErrors};
pub use load::{Loaded, LoadedCheck, Options, load, load_with_env};
pub use model::CheckMeta;

/// The JSON Schema of the pack file format, for editor completion.
pub fn pack_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(model::PackFile);
    serde_json::to_value(schema).expect("schema serializes")
}

/// The JSON Schema of the agent config (`healthprobe.yaml`).
pub fn agent_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(model::AgentConfig);
    serde_json::to_value(schema).expect("schema serializes")
}
