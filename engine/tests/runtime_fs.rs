//! The file-system calls shards make through the blocking pool, on both backends.

mod common;

use std::io;

use common::run;
use runnel_engine::rt::fs;

on_both_backends! {
    fn replace_atomically_creates_then_replaces(backend) {
        run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state");
            fs::replace_atomically(dir.path(), "state", b"first".to_vec()).await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"first");
            // A temporary file left by a crash is overwritten, not appended to.
            std::fs::write(dir.path().join("state.tmp"), b"garbage from a crash").unwrap();
            fs::replace_atomically(dir.path(), "state", b"second".to_vec()).await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"second");
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["state"], "the temporary file was renamed away");
        });
    }

    fn replace_atomically_reports_a_missing_directory(backend) {
        run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let missing = dir.path().join("missing");
            let err = fs::replace_atomically(&missing, "state", b"x".to_vec()).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(!missing.exists());
        });
    }

    fn create_dir_all_and_remove_dir_all(backend) {
        run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let nested = dir.path().join("a/b/c");
            assert!(!fs::try_exists(&nested).await.unwrap());
            fs::create_dir_all(&nested).await.unwrap();
            fs::create_dir_all(&nested).await.expect("an existing directory is fine");
            assert!(fs::try_exists(&nested).await.unwrap());
            fs::open_dir(&nested).await.unwrap().fsync().await.unwrap();
            std::fs::write(nested.join("file"), b"x").unwrap();
            fs::remove_dir_all(dir.path().join("a")).await.unwrap();
            assert!(!dir.path().join("a").exists());
            let err = fs::remove_dir_all(dir.path().join("a")).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            // A file in the way is an error, not a panic.
            std::fs::write(dir.path().join("f"), b"x").unwrap();
            assert!(fs::create_dir_all(dir.path().join("f/g")).await.is_err());
        });
    }

    fn create_open_and_remove_files(backend) {
        run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data");
            std::fs::write(&path, b"old contents").unwrap();
            let file = fs::create_file(&path).await.unwrap();
            assert_eq!(file.len().unwrap(), 0, "create truncates");
            file.write_all_at(b"hello".to_vec(), 0).await.0.unwrap();
            file.fdatasync().await.unwrap();
            file.close().await.unwrap();
            let mut options = std::fs::OpenOptions::new();
            options.read(true);
            let file = fs::open_file(&path, options).await.unwrap();
            let (n, bytes) = file.read_exact_at(Vec::with_capacity(5), 0).await;
            assert_eq!((n.unwrap(), bytes.as_slice()), (5, &b"hello"[..]));
            fs::remove_file(&path).await.unwrap();
            assert!(!path.exists());
            let err = fs::remove_file(&path).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            let err = fs::open_file(&path, std::fs::OpenOptions::new().read(true).clone())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            let err = fs::create_file(dir.path().join("missing/data")).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            let err = fs::open_dir(&path).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        });
    }

    fn dropped_calls_still_finish_and_leave_nothing_in_flight(backend) {
        run(backend, || async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("made");
            // Polled once (queued on the pool), then dropped: the call still happens.
            {
                let pending = std::pin::pin!(fs::create_dir_all(path.clone()));
                let waker = std::task::Waker::noop();
                let _ = pending.poll(&mut std::task::Context::from_waker(waker));
            }
            for _ in 0..200 {
                if path.exists() {
                    break;
                }
                runnel_engine::rt::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert!(path.exists());
            let stats = common::settle().await;
            assert_eq!(stats.driver.ops_in_flight, 0, "{stats:?}");
        });
    }
}

use std::future::Future as _;
