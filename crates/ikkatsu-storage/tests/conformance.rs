//! The storage conformance suite from ikkatsu-testkit, on every backend of this build.

use ikkatsu_storage::Storage;

macro_rules! memory_tests {
    ($($name:ident),*) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let storage = ikkatsu_storage::Storage::open("memory:").expect("memory storage");
                    ikkatsu_testkit::storage::$name(storage).await;
                }
            )*
        }
    };
}
ikkatsu_testkit::storage_behaviours!(memory_tests);

macro_rules! fs_tests {
    ($($name:ident),*) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let url = format!("file://{}", dir.path().display());
                    let storage = ikkatsu_storage::Storage::open(&url).expect("fs storage");
                    ikkatsu_testkit::storage::$name(storage).await;
                }
            )*
        }
    };
}
ikkatsu_testkit::storage_behaviours!(fs_tests);

#[tokio::test]
async fn named_memory_storages_are_shared() {
    let a = Storage::open("memory:shared-test").expect("open");
    a.write("x", &b"1"[..]).await.expect("write");
    let b = Storage::open("memory:shared-test").expect("open");
    assert_eq!(b.read("x").await.expect("read").as_ref(), b"1");
    let private = Storage::open("memory:").expect("open");
    assert!(!private.exists("x").await.expect("exists"));
}
