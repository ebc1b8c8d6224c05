//! Where the line items are: a local folder or `s3://bucket/prefix`, behind one `object_store`
//! interface, so the layout, listing and checks are the same for both.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectMeta, ObjectStore};

use crate::config::S3Config;
use crate::error::{Error, Result};

/// The input root: a store, the URL DataFusion knows it by, and the prefix under it.
#[derive(Debug, Clone)]
pub struct InputStore {
    pub store: Arc<dyn ObjectStore>,
    /// `file:///` or `s3://bucket/`.
    base: url::Url,
    prefix: Path,
}

impl InputStore {
    /// Opens `root`: `s3://bucket/prefix` (settings from `s3`, then the environment's
    /// `AWS_*` variables: keys, session token, web identity / IRSA, region, endpoint), or a
    /// local folder.
    pub fn open(root: &str, s3: &S3Config) -> Result<InputStore> {
        if let Some(rest) = root.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::config("--input", format!("`{root}` names no bucket")));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            if let Some(region) = &s3.region {
                builder = builder.with_region(region);
            }
            if s3.path_style {
                builder = builder.with_virtual_hosted_style_request(false);
            }
            if let Some(ca) = &s3.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| Error::config("input.s3.ca_file", format!("{}: {e}", ca.display())))?;
                let mut options = ClientOptions::new();
                for cert in object_store::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| Error::config("input.s3.ca_file", format!("{}: {e}", ca.display())))?
                {
                    options = options.with_root_certificate(cert);
                }
                builder = builder.with_client_options(options);
            }
            let store = builder
                .build()
                .map_err(|e| Error::config("--input", format!("cannot use {root}: {e}")))?;
            let base = url::Url::parse(&format!("s3://{bucket}/"))
                .map_err(|e| Error::config("--input", format!("`{root}`: {e}")))?;
            return Ok(InputStore {
                store: Arc::new(store),
                base,
                prefix: Path::from(prefix),
            });
        }
        let absolute =
            std::path::absolute(root).map_err(|e| Error::config("--input", format!("`{root}`: {e}")))?;
        let prefix = Path::from_absolute_path(&absolute)
            .map_err(|e| Error::config("--input", format!("`{root}`: {e}")))?;
        Ok(InputStore {
            store: Arc::new(LocalFileSystem::new()),
            base: url::Url::parse("file:///").expect("a valid URL"),
            prefix,
        })
    }

    /// `relative` (a `/`-separated folder) under the root.
    pub fn location(&self, relative: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// A location as the user would write it: `/data/…` or `s3://bucket/…`.
    pub fn display(&self, location: &Path) -> String {
        format!("{}{location}", self.base).replacen("file:///", "/", 1)
    }

    /// Every data object under `folder`, any depth (tolerates `day=DD/` levels), skipping
    /// hidden and marker objects (`.crc`, `_SUCCESS`), sorted. A missing folder has none.
    pub async fn list(&self, folder: &Path) -> Result<Vec<ObjectMeta>> {
        let prefix_parts = folder.parts().count();
        let listed: Vec<ObjectMeta> = match self.store.list(Some(folder)).try_collect().await {
            Ok(listed) => listed,
            // A missing folder is an empty one; S3 lists a missing prefix as empty, so there
            // a 404 (NoSuchBucket, reported as a generic error) means the bucket itself.
            Err(object_store::Error::NotFound { .. }) if self.base.scheme() == "file" => Vec::new(),
            Err(e)
                if matches!(e, object_store::Error::NotFound { .. })
                    || e.to_string().contains("NoSuchBucket") =>
            {
                return Err(Error::InputUnreadable {
                    file: self.base.to_string(),
                    problem: "the bucket does not exist (or this key may not see it)".into(),
                });
            }
            Err(e) => return Err(self.error(folder, e)),
        };
        let mut files: Vec<ObjectMeta> = listed
            .into_iter()
            .filter(|m| {
                m.location
                    .parts()
                    .skip(prefix_parts)
                    .all(|p| !p.as_ref().starts_with('.') && !p.as_ref().starts_with('_'))
            })
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(files)
    }

    /// The URL DataFusion reads an object by.
    pub fn table_url(&self, location: &Path) -> Result<datafusion::datasource::listing::ListingTableUrl> {
        let url = self
            .base
            .join(location.as_ref())
            .map_err(|e| Error::Internal(format!("object URL for {location}: {e}")))?;
        Ok(datafusion::datasource::listing::ListingTableUrl::parse(
            url.as_str(),
        )?)
    }

    /// Lets a session read from this store.
    pub fn register(&self, ctx: &datafusion::prelude::SessionContext) {
        ctx.register_object_store(&self.base, self.store.clone());
    }

    /// A store error for `location`, as the taxonomy sees it: a local folder that cannot be
    /// read → local resource (6), missing bucket or object → input (3), refused credentials →
    /// config (2), anything else → unavailable (4).
    pub fn error(&self, location: &Path, e: object_store::Error) -> Error {
        let at = self.display(location);
        let text = e.to_string();
        if self.base.scheme() == "file" && !matches!(e, object_store::Error::NotFound { .. }) {
            // A local folder this machine cannot read (permissions, a symlink loop): the same
            // on every retry.
            return Error::LocalIo {
                what: "cannot read the input folder".into(),
                path: at.into(),
                source: std::io::Error::other(text),
            };
        }
        // S3 list requests report a refused key as a generic error carrying the HTTP status.
        let refused = matches!(
            e,
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
        ) || text.contains("403 Forbidden")
            || text.contains("401 Unauthorized");
        if refused {
            return Error::config(
                "input credentials",
                format!(
                    "{at} refused them ({text}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the role"
                ),
            );
        }
        match e {
            object_store::Error::NotFound { .. } => Error::InputUnreadable {
                file: at,
                problem: format!("not found ({text})"),
            },
            _ => Error::Store {
                location: at,
                problem: text,
            },
        }
    }
}
