//! Config loading on arbitrary YAML, as a relay config and as a web config
//! (`--web.config.file`): an error that names what is wrong, or a config
//! whose jobs yield their targets, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::config::{from_yaml_str, ConfigError};
use relay::plan::PlanError;
use relay::web::WebConfig;

fuzz_target!(|data: &[u8]| {
    relay_fuzz::limit_allocations(64 << 20);
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    match from_yaml_str(yaml) {
        // Resolving compiles the relabel rules and builds the targets.
        Ok(loaded) => match relay::plan::resolve(&loaded.config) {
            Ok(_) => {}
            Err(PlanError::Field { path, message }) => {
                assert!(!message.is_empty(), "error without a message at {path:?}");
            }
            Err(PlanError::Config(e)) => panic!("resolve gave a load error: {e}"),
        },
        Err(ConfigError::Read(message)) => assert!(!message.is_empty()),
        Err(ConfigError::Field { path, message }) => {
            assert!(!message.is_empty(), "error without a message at {path:?}");
        }
    }
    // Relative paths stay relative: parsing reads no file.
    if let Err(e) = WebConfig::parse(yaml, None) {
        assert!(!e.to_string().is_empty());
    }
});
