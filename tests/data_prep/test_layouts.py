"""data_prep.layouts: the FSDKaggle2018 (Kaggle / Zenodo) and TAU 2019 layouts, and the errors
that name the file and line of bad input."""

import pytest

from data_prep import layouts
from data_prep.errors import DataPrepError
from tests import fixtures
from twostep_jax.data.features import FSD_CLASS_NAMES as CLASS_NAMES


# ------------------------------------------------------------------ detection


def test_zenodo_layout_is_detected_and_read(tmp_path):
    root = fixtures.write_fsd(tmp_path / "zen", fixtures.event_rows(8), layout="zenodo")
    corpus = layouts.read_event_corpus(root, CLASS_NAMES)
    assert corpus.layout == "zenodo" and len(corpus.clips) == 8
    assert corpus.audio_dir == root / "FSDKaggle2018.audio_train"


def test_tau_parent_folder_is_accepted(tmp_path):
    fixtures.write_tau(tmp_path / layouts.TAU_FOLDER, n_scenes=2, seconds=0.2)
    corpus = layouts.read_scene_corpus(tmp_path)
    assert corpus.root == tmp_path / layouts.TAU_FOLDER and len(corpus.clips) == 2
    assert corpus.clips[0].name.startswith("airport-barcelona-")


# ------------------------------------------------------------------ bad input


def test_missing_folder(tmp_path):
    with pytest.raises(DataPrepError, match="does not exist"):
        layouts.read_event_corpus(tmp_path / "nope", CLASS_NAMES)
    with pytest.raises(DataPrepError, match="does not exist"):
        layouts.read_scene_corpus(tmp_path / "nope")


def test_unrecognised_event_layout_lists_expected_and_found(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "labels.csv").write_text("a,b\n")
    with pytest.raises(DataPrepError) as err:
        layouts.read_event_corpus(tmp_path / "stuff", CLASS_NAMES)
    message = str(err.value)
    assert "train.csv + audio_train/" in message and "train_post_competition.csv" in message
    assert "labels.csv" in message


def test_wrong_csv_columns(tmp_path):
    root = fixtures.small_fsd(tmp_path)
    (root / "train.csv").write_text("file,label,verified\nx.wav,Bark,1\n")
    with pytest.raises(DataPrepError, match=r"train\.csv: missing column\(s\) \['fname', "
                                            r"'manually_verified'\]"):
        layouts.read_event_corpus(root, CLASS_NAMES)


def test_unknown_label_names_file_and_line(tmp_path):
    rows = fixtures.event_rows(8)
    rows[3] = (rows[3][0], "Dubstep", 1, rows[3][3])
    root = fixtures.small_fsd(tmp_path, rows)
    with pytest.raises(DataPrepError, match=r"train\.csv, line 5: label 'Dubstep'"):
        layouts.read_event_corpus(root, CLASS_NAMES)


def test_bad_verified_flag_and_duplicate_fname(tmp_path):
    root = fixtures.small_fsd(tmp_path)
    text = (root / "train.csv").read_text().splitlines()
    (root / "train.csv").write_text("\n".join(text[:2] + [text[2].rsplit(",", 1)[0] + ",yes"]))
    with pytest.raises(DataPrepError, match="line 3: manually_verified must be 0 or 1"):
        layouts.read_event_corpus(root, CLASS_NAMES)
    (root / "train.csv").write_text("\n".join(text[:3] + [text[1]]))
    with pytest.raises(DataPrepError, match="already listed on line 2"):
        layouts.read_event_corpus(root, CLASS_NAMES)


def test_comma_separated_tau_meta_is_explained(tmp_path):
    root = fixtures.write_tau(tmp_path / "tau", n_scenes=1, seconds=0.1)
    (root / "meta.csv").write_text("filename,scene_label\naudio/a.wav,park\n")
    with pytest.raises(DataPrepError, match="must be tab-separated"):
        layouts.read_scene_corpus(root)


def test_tau_filename_must_be_under_audio(tmp_path):
    root = fixtures.write_tau(tmp_path / "tau", n_scenes=1, seconds=0.1)
    (root / "meta.csv").write_text("filename\tscene_label\nx.wav\tpark\n")
    with pytest.raises(DataPrepError, match=r"meta\.csv, line 2: filename must look like"):
        layouts.read_scene_corpus(root)
