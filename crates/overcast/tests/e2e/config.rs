//! The config file as this build checks it: core's keys and every provider's own, each
//! problem named with its line.

use overcast::providers;
use overcast_core::config::{Config, DEFAULT_LISTEN};

#[test]
fn the_example_config_parses() {
    let text = include_str!("../../../../overcast.example.toml");
    let config = Config::parse("overcast.example.toml", text, &providers()).unwrap();
    assert!(config.environments.contains_key("aws-dev"));
    assert!(config.environments.contains_key("local"));
    assert_eq!(config.stage_policy("aws-dev").tag_key, "config");
}

#[test]
fn no_config_gives_a_local_environment_and_machine_types() {
    let mut config = Config::default();
    config.fill_defaults();
    assert_eq!(config.listen, DEFAULT_LISTEN);
    assert_eq!(config.environments["local"].provider, "qemu");
    assert_eq!(
        config.machine_types.keys().collect::<Vec<_>>(),
        ["medium", "small", "tiny"]
    );
    assert!(config.problems(&providers()).is_empty());
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "\
listen = \"nowhere\"
colour = \"blue\"

[environments.aws-dev]
provider = \"aws\"
regions = [\"eu-west-1\", \"mars\"]
regionz = []

[environments.local]
provider = \"qemu\"
endpoint_url = \"http://x\"
";
    let err = Config::parse("bad.toml", text, &providers()).unwrap_err();
    let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "line 2: colour: unknown key",
            "line 7: environments.aws-dev.regionz: unknown key",
            "line 1: listen: `nowhere` is not an address like 127.0.0.1:8080",
            "line 6: environments.aws-dev.regions[1]: `mars` is not a region name like eu-west-1",
            "line 11: environments.local.endpoint_url: only for provider aws",
        ]
    );
    assert!(err.to_string().starts_with("bad.toml: 5 problems\n"));
}
