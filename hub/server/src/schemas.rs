//! `tributary schemas list` and `tributary schemas show`: the schema
//! registry of a data directory.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use tributary_schemas::registry::VersionSel;

use crate::datadir::DataDir;

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// One line per subject: its live versions, the latest and its id.
    List {
        /// The data directory (a pipeline's log.dir).
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
    },
    /// One version of a subject as JSON: subject, version, id, schema.
    #[command(disable_version_flag = true)]
    Show {
        /// The subject (`<topic>-value` or `<topic>-key`).
        subject: String,
        /// A version number or `latest`.
        #[arg(long, default_value = "latest")]
        version: String,
        /// The data directory (a pipeline's log.dir).
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
    },
}

pub fn run(cmd: SchemasCommand) -> anyhow::Result<()> {
    match cmd {
        SchemasCommand::List { data_dir } => {
            let registry = DataDir::existing(&data_dir)?.registry()?;
            for subject in registry.subjects(false)? {
                let versions = registry.versions(&subject)?;
                let latest = registry.version(&subject, VersionSel::Latest)?;
                let list: Vec<String> = versions.iter().map(u32::to_string).collect();
                crate::records::stdout_line(format_args!(
                    "{subject}\tversions={}\tlatest={}\tid={}",
                    list.join(","),
                    latest.version,
                    latest.id
                ));
            }
        }
        SchemasCommand::Show {
            subject,
            version,
            data_dir,
        } => {
            let registry = DataDir::existing(&data_dir)?.registry()?;
            let sel: VersionSel = version.parse()?;
            let v = registry.version(&subject, sel)?;
            let schema: serde_json::Value = serde_json::from_str(&v.schema)
                .with_context(|| format!("schema {} is not JSON", v.id))?;
            let out = serde_json::json!({
                "subject": v.subject,
                "version": v.version,
                "id": v.id,
                "schema": schema,
            });
            crate::records::stdout_line(format_args!("{}", serde_json::to_string_pretty(&out)?));
        }
    }
    Ok(())
}
