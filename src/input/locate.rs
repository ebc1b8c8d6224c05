//! Where a failed read of a unit's files came from. The engine's Parquet errors (a corrupt
//! page, bad compression, invalid UTF-8) name neither the file nor the column; after such a
//! failure, each file is read again column by column until the error shows, so the operator
//! is told which file to replace. Runs only after a failure: a good run never pays for it.

use bytes::Bytes;
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::PageIndexPolicy;

use crate::error::Error;
use crate::input::discover::UnitFiles;
use crate::input::store::InputStore;

/// The files (and columns) of `files` that cannot be read, one problem each.
pub async fn unreadable(store: &InputStore, files: &UnitFiles) -> Vec<Error> {
    let mut problems = Vec::new();
    for r in &files.by_report {
        let columns: Vec<&str> = r.report.columns().iter().map(|c| c.name).collect();
        for meta in &r.files {
            let file = store.display(&meta.location);
            let bytes = match store.store.get(&meta.location).await {
                Ok(found) => found.bytes().await,
                Err(e) => Err(e),
            };
            let problem = match bytes {
                Ok(bytes) => first_bad_column(bytes, &columns),
                Err(e) => Some(format!("cannot be read again ({e})")),
            };
            if let Some(problem) = problem {
                problems.push(Error::InputUnreadable { file, problem });
            }
        }
    }
    problems
}

/// The first of `columns` whose pages do not decode, as "column `x`: why"; a panic of the
/// decoder counts as such an error.
fn first_bad_column(bytes: Bytes, columns: &[&str]) -> Option<String> {
    // The page index as the engine reads it: a corrupt one fails before any page.
    let options = || ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = match ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), options()) {
        Ok(b) => b,
        Err(e) => return Some(format!("its footer or page index cannot be read ({e})")),
    };
    let leaves = builder.parquet_schema().columns().to_vec();
    for (i, leaf) in leaves.iter().enumerate() {
        let name = leaf.name();
        if !columns.contains(&name) {
            continue;
        }
        let decode = || -> Result<(), String> {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(|e| e.to_string())?;
            let mask = ProjectionMask::leaves(builder.parquet_schema(), [i]);
            let reader = builder.with_projection(mask).build().map_err(|e| e.to_string())?;
            for batch in reader {
                batch.map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        let outcome = std::panic::catch_unwind(decode).unwrap_or_else(|_| Err("the decoder failed".into()));
        if let Err(why) = outcome {
            return Some(format!("column `{name}` cannot be decoded ({why})"));
        }
    }
    None
}

/// Whether `e` came from decoding the input's Parquet data (exit 3 from the engine).
pub fn is_decode_error(e: &Error) -> bool {
    matches!(e, Error::Engine(_)) && e.exit_code() == 3
}
