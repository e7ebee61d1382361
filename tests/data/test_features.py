"""Recipe features (ref §2.5) against independent computations, and audio loading."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from tests import fixtures as data_fixtures
from twostep_jax.data import features as F


def test_constants_and_class_names():
    assert (F.SAMPLE_RATE, F.WINDOW, F.HOP, F.N_MELS, F.FMIN, F.FMAX) == (
        32000, 2048, 1024, 64, 50, 16000)
    assert F.CLIP_SECONDS == 10 and F.FRAMES == 311 and F.HOP_S == 0.032
    assert len(F.FSD_CLASS_NAMES) == 41 and list(F.FSD_CLASS_NAMES) == sorted(F.FSD_CLASS_NAMES)
    assert F.FSD_CLASS_NAMES[0] == "Acoustic_guitar" and F.FSD_CLASS_NAMES[-1] == "Writing"
    assert F.FSD_CLASS_NAMES.index("Hi-hat") == 23 and F.FSD_CLASS_NAMES.index("Telephone") == 37


def slaney_mel_matrix(sr, n_fft, n_mels, fmin, fmax):
    """Slaney's mel filterbank written out from its definition (not librosa): [n_mels, bins]."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        return f / f_sp if f < min_log_hz else min_log_mel + np.log(f / min_log_hz) / logstep

    def mel_to_hz(m):
        return m * f_sp if m < min_log_mel else min_log_hz * np.exp(logstep * (m - min_log_mel))

    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    edges = np.array([mel_to_hz(m) for m in mels])
    bins = np.arange(n_fft // 2 + 1) * sr / n_fft
    bank = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        bank[i] = np.maximum(0, np.minimum(rising, falling)) * 2.0 / (hi - lo)  # area norm
    return bank


def straightforward_logmel(audio):
    """The recipe's definition, computed frame by frame with plain numpy."""
    window = np.array([0.54 - 0.46 * np.cos(2 * np.pi * k / 2047) for k in range(2048)])
    frames = []
    for start in range(0, len(audio) - 2048 + 1, 1024):
        spectrum = np.fft.rfft(audio[start:start + 2048] * window)
        frames.append(np.abs(spectrum) / np.sqrt(np.sum(window**2)))
    mel = np.array(frames) @ slaney_mel_matrix(32000, 2048, 64, 50.0, 16000.0).T
    return np.log(mel + 1e-8)


@pytest.fixture(scope="module")
def audio10s():
    rng = np.random.default_rng(0)
    t = np.arange(F.CLIP_SAMPLES) / F.SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
            ).astype(np.float32)


def test_logmel_matches_straightforward_computation(audio10s):
    got = F.logmel(audio10s)
    assert got.shape == (311, 64) and got.dtype == np.float32
    want = straightforward_logmel(audio10s.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)


def test_mel_filterbank_is_slaney():
    np.testing.assert_allclose(F.mel_filterbank(), slaney_mel_matrix(32000, 2048, 64, 50, 16000),
                               rtol=1e-6, atol=1e-9)


def test_magnitude_spectrogram_matches_scipy(audio10s):
    from scipy import signal

    _, _, sxx = signal.spectrogram(audio10s.astype(np.float64), window=np.hamming(2048),
                                   nperseg=2048, noverlap=1024, detrend=False,
                                   return_onesided=True, mode="magnitude")
    np.testing.assert_allclose(F.magnitude_spectrogram(audio10s), sxx.T, rtol=1e-9, atol=1e-12)


def test_frame_count_formula():
    assert F.logmel(np.zeros(2048 + 5 * 1024 + 1000, np.float32)).shape == (6, 64)
    with pytest.raises(ValueError, match="fewer than one window"):
        F.logmel(np.zeros(100, np.float32))


def test_load_audio_resamples_44k1_mono_16bit(tmp_path):
    path = data_fixtures.write_wav(tmp_path / "e.wav", data_fixtures.tone(1.5, 1000.0),
                                   44100, "PCM_16")
    audio = F.load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 48000) <= 1
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    assert abs(np.argmax(spectrum) * 32000 / audio.size - 1000.0) < 2.0  # pitch kept


def test_load_audio_downmixes_48k_stereo_24bit(tmp_path):
    n = 48000
    left = 0.4 * np.sin(2 * np.pi * 500 * np.arange(n) / 48000)
    stereo = np.stack([left, 0.5 * left], axis=1)
    path = data_fixtures.write_wav(tmp_path / "s.wav", stereo, 48000, "PCM_24")
    audio = F.load_audio(path)
    assert abs(audio.size - 32000) <= 1
    rms = np.sqrt(np.mean(audio[1000:-1000].astype(np.float64) ** 2))
    assert rms == pytest.approx(0.75 * 0.4 / np.sqrt(2), rel=1e-3)  # mean of the channels


def test_load_audio_at_target_rate_is_exact(tmp_path):
    x = (np.random.default_rng(1).uniform(-0.5, 0.5, 3200) * 32767).round() / 32768
    path = data_fixtures.write_wav(tmp_path / "m.wav", x, 32000, "PCM_16")
    np.testing.assert_array_equal(F.load_audio(path), x.astype(np.float32))


@pytest.mark.parametrize("case", ["missing", "corrupt", "empty", "nan"])
def test_load_audio_errors_name_the_file(tmp_path, case):
    path = tmp_path / f"{case}.wav"
    if case == "corrupt":
        path.write_bytes(b"RIFF\x00\x00junk" + bytes(range(256)))
    elif case == "empty":
        soundfile.write(str(path), np.zeros((0,)), 44100, subtype="PCM_16")
    elif case == "nan":
        soundfile.write(str(path), np.array([0.0, np.nan, 0.1], np.float32), 44100,
                        subtype="FLOAT")
    message = {"missing": "not found", "corrupt": "not a readable audio file", "empty": "no audio samples",
               "nan": "NaN"}[case]
    with pytest.raises(F.AudioError, match=message) as err:
        F.load_audio(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_importing_features_and_input_pipeline_does_not_import_tensorflow():
    code = ("import sys, twostep_jax, twostep_jax.data.features, twostep_jax.data.input_pipeline, twostep_jax.data.dataset; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unreadable_files_and_directories_get_plain_messages(tmp_path, capfd):
    from twostep_jax.data.features import AudioError, load_audio

    # These bytes send libsndfile through its MPEG probe: "File does not exist or is not a
    # regular file (possibly a pipe?)" and mpg123 chatter on stderr (fd 2) before the fix.
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 200000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="noise.wav: not a readable audio file") as e:
        load_audio(noise)
    assert "possibly a pipe" not in str(e.value)
    captured = capfd.readouterr()
    assert "mpg123" not in captured.err and "MPEG" not in captured.err, captured.err
    with pytest.raises(AudioError, match="is a directory, not an audio file"):
        load_audio(tmp_path)
