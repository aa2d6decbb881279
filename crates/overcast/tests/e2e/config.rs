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
    assert_eq!(config.compat.cloudman.unwrap().environment, "aws-dev");
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

/// The Cloud VM API's environments.json example, as its contract quotes it.
const VM_API_ENVIRONMENTS: &str = r#"[
  {"name": "aws-test1", "cloud": "Aws", "url": "", "region": "eu-west-3",
   "network_id": "subnet-0e5fbdb1ac4a8dead", "vpc_id": "vpc-09ece8e3b2134782f"},
  {"name": "azure-test1", "cloud": "Azure", "url": "AzurePublicCloud", "region": "Azure-int/westeurope",
   "network_id": "/subscriptions/…/subnets/first-subnet", "vpc_id": "<tenant id>/<subscription id>", "project": "oj-test"},
  {"name": "pve-test1", "cloud": "Proxmox", "url": "https://192.168.8.136:8006", "region": "Proxmox/1",
   "network_id": "", "storage_external_id": "storage/pve/local-lvm", "vpc_id": "node/pve"}
]
"#;

/// The Cloud VM API's machinetypes.json example, as its contract quotes it.
const VM_API_MACHINE_TYPES: &str = r#"{
  "small-debian": {
    "os": {"os_type": "Linux", "os_distribution": "Debian", "os_disk_size_gb": 50},
    "clouds": {
      "Aws":     {"instance_type": "t2.micro",     "image": "ami-0644165ab979df02d"},
      "Azure":   {"instance_type": "Standard_B1s", "image": "Debian/debian-12/12-gen2/latest"},
      "Proxmox": {"instance_type": "ecs.g1.c1m1",  "image": "local:iso/debian12.iso"}
    }
  },
  "medium-debian": {"os": {"os_type": "Linux", "os_distribution": "Debian"},
                    "clouds": {"Aws": {"instance_type": "t3.medium", "image": "ami-0644165ab979df02d"}, "…": {}}}
}
"#;

mod import_vm_api {
    use super::{VM_API_ENVIRONMENTS, VM_API_MACHINE_TYPES};
    use crate::BIN;
    use overcast::providers;
    use overcast_core::config::Config;
    use overcast_test_utils::process::{isolated, run};
    use std::path::Path;

    /// `overcast config import-vm-api` on two files written into `home`.
    fn import(home: &Path, environments: &str, machine_types: &str) -> (i32, String, String) {
        std::fs::write(home.join("environments.json"), environments).unwrap();
        std::fs::write(home.join("machinetypes.json"), machine_types).unwrap();
        run(isolated(BIN, home).args([
            "config",
            "import-vm-api",
            "environments.json",
            "machinetypes.json",
        ]))
    }

    #[test]
    fn the_contract_examples_become_a_config_that_passes_the_check() {
        let home = tempfile::tempdir().unwrap();
        let (code, out, err) = import(home.path(), VM_API_ENVIRONMENTS, VM_API_MACHINE_TYPES);
        assert_eq!(code, 0, "{err}");

        for expected in [
            "[environments.aws-test1]\n",
            "provider = \"aws\"\n",
            "regions = [\"eu-west-3\"]\nsubnet = \"subnet-0e5fbdb1ac4a8dead\"\n",
            "# vpc_id \"vpc-09ece8e3b2134782f\" is not needed",
            "# Credentials come from the AWS default chain",
            "# environment \"azure-test1\" (cloud Azure) is not imported: overcast has no azure provider yet\n",
            "[environments.pve-test1]\n",
            "provider = \"proxmox\"\n",
            "url = \"https://192.168.8.136:8006\"\n",
            "node = \"pve\"\nstorage = \"local-lvm\"\n",
            "[machine_types.small-debian]\ndescription = \"Debian (Linux)\"\n\
             aws = { instance_type = \"t2.micro\", image = \"ami-0644165ab979df02d\" }\n",
            "[machine_types.medium-debian]\ndescription = \"Debian (Linux)\"\n\
             aws = { instance_type = \"t3.medium\", image = \"ami-0644165ab979df02d\" }\n",
            "# machine type \"small-debian\" cloud Azure is not imported",
            "# machine type \"small-debian\" cloud Proxmox is not imported",
        ] {
            assert!(out.contains(expected), "{expected:?} not in:\n{out}");
        }
        for expected in [
            "imported 2 of 3 environments: aws-test1, pve-test1\n",
            "imported 2 of 2 machine types: medium-debian, small-debian\n",
            "not imported: environment \"azure-test1\" (cloud Azure): overcast has no azure provider yet\n",
            "not imported: machine type \"small-debian\" cloud Azure: overcast has no azure provider yet\n",
            "not imported: machine type \"small-debian\" cloud Proxmox: image \"local:iso/debian12.iso\" is not a template",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }

        let config = Config::parse("imported.toml", &out, &providers()).unwrap();
        assert_eq!(
            config.environments.keys().collect::<Vec<_>>(),
            ["aws-test1", "pve-test1"]
        );
        assert_eq!(
            config.machine_types.keys().collect::<Vec<_>>(),
            ["medium-debian", "small-debian"]
        );
        assert_eq!(
            config.machine_types["small-debian"].sizes["aws"]["image"].as_str(),
            Some("ami-0644165ab979df02d")
        );

        let file = home.path().join("overcast.toml");
        std::fs::write(&file, &out).unwrap();
        let (code, out, err) =
            run(isolated(BIN, home.path()).args(["config", "check", file.to_str().unwrap()]));
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("ok (2 environments, 2 machine types)"),
            "{out}"
        );
    }

    #[test]
    fn a_broken_file_is_an_error_naming_the_file_and_the_value() {
        let home = tempfile::tempdir().unwrap();
        let (code, out, err) = import(
            home.path(),
            r#"[{"name": "a", "cloud": "Aws"}, {"name": "b", "cloud": "Aws"}, {"name": "c", "cloud": 3}]"#,
            VM_API_MACHINE_TYPES,
        );
        assert_eq!(code, 1);
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains("environments.json: [2].cloud: expected a string, found number 3"),
            "{err}"
        );

        let (code, _, err) = import(
            home.path(),
            VM_API_ENVIRONMENTS,
            "{\"small\": {\"os\": 1,}}",
        );
        assert_eq!(code, 1);
        assert!(
            err.contains("machinetypes.json: not valid JSON: ") && err.contains("line 1"),
            "{err}"
        );

        let (code, _, err) = run(isolated(BIN, home.path()).args([
            "config",
            "import-vm-api",
            "missing.json",
            "machinetypes.json",
        ]));
        assert_eq!(code, 1);
        assert!(err.contains("missing.json: cannot read the file"), "{err}");
    }
}
