//! A small typed client of QMP, QEMU's JSON control protocol, over the unix socket each VM
//! listens on: the greeting and capabilities handshake, commands with their answers, and
//! events skipped on the way.

use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("the QMP socket failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("QEMU closed the QMP connection")]
    Closed,
    #[error("QEMU sent something that is not QMP: {0}")]
    Protocol(String),
    /// QEMU refused a command: its error class and description.
    #[error("QEMU refused `{command}`: {class}: {desc}")]
    Refused {
        command: String,
        class: String,
        desc: String,
    },
}

/// What `query-status` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VmStatus {
    /// `running`, `paused`, `shutdown`, `prelaunch`, ...
    pub status: String,
    pub running: bool,
}

/// One QMP connection, ready for commands.
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The QEMU version from the greeting, e.g. `7.2.22`.
    version: String,
}

impl Qmp {
    /// Connects and completes the handshake.
    pub async fn connect(socket: &Path) -> Result<Qmp, QmpError> {
        let (read, writer) = UnixStream::connect(socket).await?.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(read),
            writer,
            version: String::new(),
        };
        let greeting = qmp.next_message().await?;
        let version = &greeting["QMP"]["version"]["qemu"];
        if version.is_null() {
            return Err(QmpError::Protocol(format!("no greeting: {greeting}")));
        }
        qmp.version = format!(
            "{}.{}.{}",
            version["major"], version["minor"], version["micro"]
        );
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Runs a command and answers its `return` value; events that arrive first are skipped.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        loop {
            let mut message = self.next_message().await?;
            if message.get("event").is_some() {
                continue;
            }
            if let Some(answer) = message.get_mut("return") {
                return Ok(answer.take());
            }
            if let Some(error) = message.get("error") {
                return Err(QmpError::Refused {
                    command: command.to_string(),
                    class: error["class"]
                        .as_str()
                        .unwrap_or("GenericError")
                        .to_string(),
                    desc: error["desc"]
                        .as_str()
                        .unwrap_or("no description")
                        .to_string(),
                });
            }
            return Err(QmpError::Protocol(message.to_string()));
        }
    }

    pub async fn query_status(&mut self) -> Result<VmStatus, QmpError> {
        let answer = self.execute("query-status", None).await?;
        serde_json::from_value(answer.clone()).map_err(|_| QmpError::Protocol(answer.to_string()))
    }

    /// Presses the ACPI power button: a guest that listens shuts itself down.
    pub async fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).await.map(|_| ())
    }

    /// Resets the machine, like its reset button.
    pub async fn system_reset(&mut self) -> Result<(), QmpError> {
        self.execute("system_reset", None).await.map(|_| ())
    }

    /// Ends QEMU at once, like pulling the plug.
    pub async fn quit(&mut self) -> Result<(), QmpError> {
        self.execute("quit", None).await.map(|_| ())
    }

    async fn next_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line.trim().to_string()))
    }
}
