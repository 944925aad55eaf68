//! `trainer.threads` sizes the backend's CPU pool (its own test binary: rayon's global pool can be
//! built once per process).

#[test]
fn threads_size_the_flex_pool() {
    trainer::backend::set_threads(config::Backend::Flex, Some(1)).unwrap();
    assert_eq!(rayon::current_num_threads(), 1);
    // A second sizing cannot take effect and says so instead of passing silently.
    assert!(trainer::backend::set_threads(config::Backend::Flex, Some(2)).is_err());
    // No setting: nothing to do.
    trainer::backend::set_threads(config::Backend::Flex, None).unwrap();
}

#[cfg(feature = "tch")]
#[test]
fn threads_size_the_libtorch_pool() {
    trainer::backend::set_threads(config::Backend::Tch, Some(1)).unwrap();
    assert_eq!(tch::utils::get_num_threads(), 1);
}
