"""Converts the official OadTR THUMOS'14 release into the plain streams `oad.full` reads.

The official data layer (`dataset.py` `TRNTHUMOSDataLayer`) reads two pickles per split: the
features, `{session: {'rgb': [T, 2048 or 3072], 'flow': [T, 1024]}}` (TSN-ANet:
`thumos_all_feature_{val,test}_tsn_v2.pickle`; the Kinetics release holds the same layout), and
the annotations, `{session: {'anno': [T, 22]}}` (`thumos_{val,test}_anno.pickle` from
`data/anno_thumos.zip`). It trains on the validation videos and tests on the test videos
(`data/data_info_new.json`: `train_session_set`, `test_session_set`).

Usage: python thumos_to_npy.py FEATURES_VAL.pickle ANNO_VAL.pickle FEATURES_TEST.pickle
ANNO_TEST.pickle data_info_new.json OUT_DIR

Writes OUT_DIR/thumos/{train,test}/<session>.features.npy (float32 [T, rgb + flow], rgb first as
`torch.cat((rgb, flow), 2)` in `ViT.py`) and <session>.labels.npy (int64 [T], the annotation's
argmax: 0 background, 1..20 actions, 21 ambiguous).
"""
import json
import os
import pickle
import sys

import numpy as np

feat_val, anno_val, feat_test, anno_test, info, out = sys.argv[1:7]
sessions = json.load(open(info))["THUMOS"]
for split, feat_path, anno_path, key in [("train", feat_val, anno_val, "train_session_set"),
                                         ("test", feat_test, anno_test, "test_session_set")]:
    feats = pickle.load(open(feat_path, "rb"))
    annos = pickle.load(open(anno_path, "rb"))
    folder = os.path.join(out, "thumos", split)
    os.makedirs(folder, exist_ok=True)
    for s in sessions[key]:
        x = np.concatenate([feats[s]["rgb"], feats[s]["flow"]], axis=1).astype(np.float32)
        y = np.asarray(annos[s]["anno"]).argmax(axis=1).astype(np.int64)
        if len(x) != len(y):
            sys.exit(f"{s}: {len(x)} feature frames, {len(y)} annotated frames")
        np.save(os.path.join(folder, f"{s}.features.npy"), x)
        np.save(os.path.join(folder, f"{s}.labels.npy"), y)
    print(split, len(sessions[key]), "sessions ->", folder)
