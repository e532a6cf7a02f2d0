"""Classification: collisions, accents, negation, flags, the categories file, eval, labels."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import unicodedata
from pathlib import Path

import pytest

from mailbox_processor import classify, config, evaluate, pipeline
from mailbox_processor.errors import ConfigError
from mailbox_processor.models import RawMail, Submission
from mailbox_processor.store import Store
from tests import mailfactory as mf
from tests.conftest import run_cli

NO_CONFIG = {"MAILBOX_PROCESSOR_CONFIG": ""}


@pytest.fixture(scope="module")
def lexicon() -> classify.Lexicon:
    return classify.load_lexicon(None)


def k(text: str, lexicon: classify.Lexicon, **kw: bool) -> classify.Classification:
    return classify.classify_text(text, lexicon, **kw)


# ----- collisions and accents ---------------------------------------------------------


@pytest.mark.parametrize(("danger", "harmless"), [
    ("Căn nhà cũ ở cuối hẻm vừa bị sập.", "Sắp tới tổ dân phố họp bàn việc trồng hoa."),
    ("Nhà bên cạnh đang bị cháy.", "Sáng nào tôi cũng chạy bộ quanh hồ."),
    ("Có người đang định tự tử trên cầu.", "Bà con cứ từ từ xếp hàng."),
])
def test_collision_pairs_do_not_cross_match_in_accented_text(
    danger: str, harmless: str, lexicon: classify.Lexicon
) -> None:
    assert k(danger, lexicon).urgency == "khan"
    calm = k(harmless, lexicon)
    assert calm.urgency == "thuong", calm.cues
    assert not {"sập", "cháy", "tự tử"} & set(calm.cues)


def test_cho_is_not_cho_market(lexicon: classify.Lexicon) -> None:
    market = k("Chợ họp lấn ra cả lòng đường.", lexicon)
    assert "chợ" in classify.find("Chợ họp lấn ra cả lòng đường.", lexicon)[0].phrase
    assert market.category == "trat-tu-do-thi"
    giving = classify.find("Tôi cho con đi học thêm.", lexicon)
    assert "chợ" not in {m.phrase for m in giving}
    assert k("Tôi cho con đi học thêm.", lexicon).category == "giao-duc"


def test_a_longer_phrase_starting_inside_a_shorter_one_wins(lexicon: classify.Lexicon) -> None:
    # "nước ngập" (sớm) starts first, but "ngập đến ngực" (khẩn) is longer and reaches further.
    r = k("Nước ngập đến ngực người lớn, cần đưa người già ra.", lexicon)
    assert r.urgency == "khan" and "ngập đến ngực" in r.cues


def test_longer_phrase_consumes_the_span(lexicon: classify.Lexicon) -> None:
    phrases = [m.phrase for m in classify.find("Ô nhiễm môi trường quá nặng", lexicon)]
    assert "trường" not in phrases and any("môi trường" in p for p in phrases)
    assert k("Ô nhiễm môi trường quá nặng", lexicon).category == "moi-truong"


def test_nfd_input_gives_the_nfc_result(lexicon: classify.Lexicon) -> None:
    text = "Khu phố tôi mất điện từ tối qua, dây điện đứt rơi xuống đường."
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    assert k(nfd, lexicon) == k(text, lexicon)
    assert k(text, lexicon).urgency == "khan"


def test_old_and_new_tone_placement_match_alike(lexicon: classify.Lexicon) -> None:
    assert k("Thông tin về hoà giải, thuỷ lợi", lexicon) == k("Thông tin về hòa giải, thủy lợi",
                                                               lexicon)


def test_text_without_accents_still_classifies(lexicon: classify.Lexicon) -> None:
    r = k("Nha toi o to 3 bi mat dien tu sang den gio, mong dien luc kiem tra", lexicon)
    assert (r.category, r.urgency) == ("dien-nuoc-thoat-nuoc", "som")
    fire = k("Nha ben canh dang boc chay, khoi den mu mit", lexicon)
    assert fire.urgency == "khan"


def test_strict_words_do_not_match_alone_without_accents(lexicon: classify.Lexicon) -> None:
    # "sap" is sắp as often as sập, "chay" chạy as often as cháy.
    assert k("Sap toi phuong co to chuc le hoi khong a", lexicon).urgency == "thuong"
    assert k("Con toi chay xe dap di hoc moi ngay", lexicon).urgency == "thuong"
    assert k("Cho toi hoi ve thu tuc lam giay khai sinh", lexicon).category \
        == "thu-tuc-hanh-chinh"


def test_mixed_accented_subject_and_unaccented_body(lexicon: classify.Lexicon) -> None:
    text = "Ngập nặng ở tổ 5\n\nkhu pho toi nuoc len nhanh, ngap sau den nguc, nhieu nha bi co lap"
    r = k(text, lexicon)
    assert r.category == "dien-nuoc-thoat-nuoc"
    assert r.urgency == "khan"
    assert "ngap sau" in r.cues


def test_strip_accents_maps_d_bar(lexicon: classify.Lexicon) -> None:
    assert classify.strip_accents("Đường đê Đồng Nai") == "Duong de Dong Nai"
    assert classify.fold("đ") == "d"


# ----- negation and resolution --------------------------------------------------------


def test_negation_cancels_an_urgency_cue(lexicon: classify.Lexicon) -> None:
    assert k("Khu tôi mưa to nhưng không bị ngập, cũng không nguy hiểm gì.", lexicon).urgency \
        == "thuong"
    assert k("Khu tôi mưa to và bị ngập.", lexicon).urgency == "som"


def test_a_resolved_danger_is_not_urgent(lexicon: classify.Lexicon) -> None:
    r = k("Đám cháy ở chợ đã được dập tắt, không ai bị thương.", lexicon)
    assert r.urgency == "thuong"
    assert r.category == "an-ninh-trat-tu"  # the topic stays the topic
    assert k("Đám cháy ở chợ đang lan sang các nhà bên cạnh.", lexicon).urgency == "khan"


@pytest.mark.parametrize("text", [
    "Con tôi 6 tuổi đi lạc từ chiều, cả nhà đang tìm.",
    "Có cháu bé vừa rơi xuống hồ điều hòa, mọi người đang tìm.",
    "Trần nhà chung cư bong mảng bê tông rơi xuống cầu thang.",
    "Cây đổ chắn ngang đường, đè lên xe máy của một chị.",
    "Cây cầu tre qua kênh bị sập, học sinh không qua được.",
])
def test_dangers_to_people_now_are_urgent(text: str, lexicon: classify.Lexicon) -> None:
    assert k(text, lexicon).urgency == "khan"


@pytest.mark.parametrize("text", [
    "Cháy nổ bình ga ở chung cư mini số 8, mọi người đang chạy ra ngoài.",
    "Có mùi ga nồng nặc ở cầu thang tầng 3.",
    "Cháy dây điện ở đầu ngõ 3.",
])
def test_gas_spelt_ga_and_wire_fires_are_urgent(text: str, lexicon: classify.Lexicon) -> None:
    assert k(text, lexicon).urgency == "khan"


@pytest.mark.parametrize(("text", "category", "urgency"), [
    ("Bà cụ hàng xóm sống một mình bị ngã, nằm bất động, gọi mãi không ai nghe máy.",
     "y-te", "khan"),
    ("Cống trước nhà bị tắc mấy hôm nay bốc mùi kinh khủng, mong phường cho người xuống thông.",
     "dien-nuoc-thoat-nuoc", "som"),  # taxonomy: drains go here, the smell is a symptom
    ("Đường Lê Lợi bị tắc cứng giờ tan tầm.", "giao-thong", "thuong"),
    ("Ô tô đỗ chắn hết cửa nhà tôi cả ngày.", "trat-tu-do-thi", "thuong"),  # parking
    ("Có người lạ lảng vảng trong ngõ mấy đêm nay.", "an-ninh-trat-tu", "thuong"),
    ("Đường ống nước vỡ, nước phun lên mặt đường.", "dien-nuoc-thoat-nuoc", "som"),
    ("Chợ buổi sáng bán hàng tràn ra lòng đường, ô tô không đi được.", "trat-tu-do-thi",
     "thuong"),
])
def test_everyday_reports_land_where_the_taxonomy_puts_them(
    text: str, category: str, urgency: str, lexicon: classify.Lexicon
) -> None:
    r = k(text, lexicon)
    assert (r.category, r.urgency) == (category, urgency)


def test_fire_safety_as_a_topic_is_not_an_alert(lexicon: classify.Lexicon) -> None:
    r = k("Đề nghị tăng cường kiểm tra an toàn cháy nổ ở các chung cư mini.", lexicon)
    assert r.urgency != "khan"


@pytest.mark.parametrize("text", ["Cột điện bốc cháy trước nhà số 4.",
                                  "Dây điện trên cột chập cháy, tóe lửa liên tục."])
def test_a_burning_pole_or_sparking_wire_is_electricity(text: str,
                                                         lexicon: classify.Lexicon) -> None:
    r = k(text, lexicon)  # taxonomy: a burning power pole or sparking wires → dien-nuoc
    assert (r.category, r.urgency) == ("dien-nuoc-thoat-nuoc", "khan")


LETTER = ("Kính gửi Ban Thường trực Ủy ban MTTQ phường.\nTôi tên là [tên], cư trú tại tổ dân "
          "phố 3. Tôi xin kiến nghị việc ngõ 15 bị xuống cấp, ổ gà nhiều. Kính mong Mặt trận "
          "phường chuyển kiến nghị tới UBND phường xem xét.\nTrân trọng cảm ơn.")


def test_a_formal_letter_to_the_front_is_filed_by_its_problem(lexicon: classify.Lexicon) -> None:
    # The salutation, the self-introduction, the request to pass it on and the closing
    # thanks are in every letter: they must not file it under the Front and thanks.
    assert k(LETTER, lexicon).category == "giao-thong"
    assert k(classify.strip_accents(LETTER), lexicon).category == "giao-thong"


def test_thanks_that_are_the_message_still_count(lexicon: classify.Lexicon) -> None:
    assert k("Cảm ơn\nXin cảm ơn các anh chị ở phường đã nhiệt tình giúp gia đình tôi làm "
             "giấy khai sinh cho cháu.", lexicon).category == "khac-gop-y"
    front = "Góp ý về Mặt trận\nKính gửi Mặt trận phường, các buổi họp do Mặt trận tổ chức " \
            "rất hình thức, đề nghị đổi mới."
    assert k(front, lexicon).category == "khac-gop-y"  # about the Front, not just to it


def test_a_salutation_without_a_comma_still_classifies(lexicon: classify.Lexicon) -> None:
    assert k("Kính gửi phường đèn đường ngõ 12 hỏng", lexicon).category == "giao-thong"


def test_comment_on_laws_and_punishment_is_not_a_live_danger(lexicon: classify.Lexicon) -> None:
    assert k("Phải xử lý thật nặng bọn cướp giật.", lexicon).urgency == "thuong"
    assert k("Cần tăng hình phạt với tội bạo hành trẻ em.", lexicon).urgency == "thuong"
    # The same words in another sentence leave a report of what is happening alone.
    assert k("Có kẻ đang đánh đập trẻ em ở nhà số 3. Đề nghị pháp luật xử lý nghiêm.",
             lexicon).urgency == "khan"


def test_a_long_standing_danger_is_som(lexicon: classify.Lexicon) -> None:
    r = k("Bức tường sau nhà có nguy cơ sập, tình trạng kéo dài nhiều tháng.", lexicon)
    assert r.urgency == "som"


# ----- flags ---------------------------------------------------------------------------


def test_flag_spam_marketing(lexicon: classify.Lexicon) -> None:
    r = k("KHUYẾN MÃI SỐC! Giảm giá 50%, miễn phí vận chuyển, liên hệ ngay hotline.", lexicon)
    assert "spam" in r.flags
    assert r.urgency == "thuong"


def test_flag_spam_links(lexicon: classify.Lexicon) -> None:
    text = "Xem tại http://a.example/x http://b.example/y https://c.example/z www.d.example"
    assert "spam" in k(text, lexicon).flags


def test_flag_spam_phishing(lexicon: classify.Lexicon) -> None:
    text = "Tài khoản của bạn sẽ bị khóa. Bấm vào link để xác minh tài khoản và nhập mã OTP."
    assert "spam" in k(text, lexicon).flags


def test_flag_spam_foreign_language(lexicon: classify.Lexicon) -> None:
    text = "Dear friend, we are pleased to offer you an exclusive business partnership today."
    assert "spam" in k(text, lexicon).flags
    assert "spam" in k("您好，我们公司提供优质的产品和服务，欢迎联系我们了解详情。", lexicon).flags
    # Vietnamese typed without accents is not foreign.
    assert "spam" not in k("Nha toi bi mat nuoc may ngay nay roi, mong cong ty cap nuoc xem",
                           lexicon).flags


def test_flag_auto_from_the_submission(lexicon: classify.Lexicon) -> None:
    sub = Submission(ref="HT-00000", received_on=dt.date(2026, 1, 1), location=None,
                     text="Delivery Status Notification (Failure)", pseudonym="CD-000000",
                     automatic=True)
    r = classify.classify(sub, lexicon)
    assert "auto" in r.flags and r.urgency == "thuong"


@pytest.mark.parametrize("text", ["", "Test", "test\n\nSent from my iPhone", "Gửi thử ạ",
                                  "Kính gửi,\n\nTrân trọng"])
def test_flag_empty(text: str, lexicon: classify.Lexicon) -> None:
    assert "empty" in k(text, lexicon).flags


def test_flag_abuse_only_without_a_petition(lexicon: classify.Lexicon) -> None:
    assert "abuse" in k("Đồ ngu, lũ ăn hại các người!", lexicon).flags
    r = k("Lũ ăn hại! Đường ở tổ 4 ổ gà khắp nơi, đèn đường hỏng cả tháng không ai sửa.",
          lexicon)
    assert "abuse" not in r.flags
    assert r.category == "giao-thong"


def test_a_plain_petition_has_no_flags(lexicon: classify.Lexicon) -> None:
    r = k("Đề nghị phường cho thu gom rác ở đầu ngõ 12, rác chất đống bốc mùi.", lexicon)
    assert r.flags == frozenset()
    assert (r.category, r.urgency) == ("moi-truong", "som")
    assert 0 < r.confidence <= 1


def test_nothing_to_go_on_is_khac_gop_y(lexicon: classify.Lexicon) -> None:
    r = k("Tôi muốn hỏi một việc.", lexicon)
    assert (r.category, r.confidence) == ("khac-gop-y", 0.0)


# ----- the categories file -------------------------------------------------------------


def _minimal_lexicon() -> str:
    lines = ["# test lexicon", "[settings]", "min_score = 1", ""]
    for slug in classify.CATEGORIES:
        lines += [f"[categories.{slug}]", f'name = "Tên {slug}"',
                  f"[categories.{slug}.phrases]", f'"từ khóa {slug}" = 2', ""]
    lines += ["[urgency]", 'khan = ["cháy"]', 'som = ["mất điện"]', ""]
    return "\n".join(lines)


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def _load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "categories.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        classify.load_lexicon(str(path))
    assert str(path) in str(e.value)
    return str(e.value)


def test_minimal_lexicon_loads(tmp_path: Path) -> None:
    path = tmp_path / "categories.toml"
    path.write_text(_minimal_lexicon(), encoding="utf-8")
    lex = classify.load_lexicon(str(path))
    assert classify.classify_text("Có từ khóa y-te ở đây", lex).category == "y-te"
    assert lex.name("y-te") == "Tên y-te"


def test_bad_weight_names_the_line(tmp_path: Path) -> None:
    text = _minimal_lexicon().replace('"từ khóa giao-duc" = 2', '"từ khóa giao-duc" = -1')
    msg = _load_error(tmp_path, text)
    assert f"line {_line_of(text, 'từ khóa giao-duc')}: weight must be a positive number" in msg


def test_non_numeric_weight_names_the_line(tmp_path: Path) -> None:
    text = _minimal_lexicon().replace('"từ khóa y-te" = 2', '"từ khóa y-te" = "cao"')
    msg = _load_error(tmp_path, text)
    assert f"line {_line_of(text, 'từ khóa y-te')}: weight must be a positive number" in msg


def test_unknown_slug_names_the_line(tmp_path: Path) -> None:
    text = _minimal_lexicon() + '\n[categories.nha-o]\nname = "Nhà ở"\n'
    msg = _load_error(tmp_path, text)
    assert f"line {_line_of(text, '[categories.nha-o]')}: unknown category slug 'nha-o'" in msg


def test_empty_category_names_the_line(tmp_path: Path) -> None:
    text = _minimal_lexicon().replace('"từ khóa moi-truong" = 2\n', "")
    msg = _load_error(tmp_path, text)
    line = _line_of(text, "[categories.moi-truong.phrases]")
    assert f"line {line}: category 'moi-truong' has no phrases" in msg


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    text = _minimal_lexicon().replace('"từ khóa y-te" = 2', '"từ khóa y-te" = = 2')
    msg = _load_error(tmp_path, text)
    assert re.search(rf"line {_line_of(text, 'từ khóa y-te')}: not valid TOML", msg), msg


def test_missing_category_and_bad_list(tmp_path: Path) -> None:
    text = _minimal_lexicon().replace("[categories.y-te]", "[categories.y-te-x]")
    assert "unknown category slug 'y-te-x'" in _load_error(tmp_path, text)
    text = _minimal_lexicon().replace('khan = ["cháy"]', 'khan = "cháy"')
    msg = _load_error(tmp_path, text)
    assert f"line {_line_of(text, 'khan = ')}: urgency.khan must be a list of strings" in msg


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        classify.load_lexicon(str(tmp_path / "nope.toml"))


def test_shipped_lexicon_is_package_data() -> None:
    from importlib import resources

    text = (resources.files("mailbox_processor.defaults") / "categories.toml").read_text("utf-8")
    lex = classify.parse_lexicon(text, "categories.toml")
    assert {slug for slug, _ in lex.names} == set(classify.CATEGORIES)
    phrases = sum(len(v) for v in lex.exact.values())
    assert phrases > 500  # a broad lexicon, not a handful of keywords


# ----- evaluation ----------------------------------------------------------------------


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "category", "urgency"])
        for i, row in enumerate(rows, 1):
            w.writerow([i, *row])
    return path


def test_eval_json_on_a_small_csv(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "small.csv", [
        ("Nhà tôi mất điện từ sáng", "dien-nuoc-thoat-nuoc", "som"),
        ("Cháy nhà lớn, cứu với", "an-ninh-trat-tu", "khan"),
        ("Đường có nhiều ổ gà", "giao-thong", "thuong"),  # predicted som
        ("Học phí tăng quá", "y-te", "thuong"),  # a wrong gold label: predicted giao-duc
    ])
    r = run_cli(None, "classify", "--eval", str(path), "--format", "json", env=NO_CONFIG)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    # Categories seen: dien-nuoc, an-ninh, giao-thong (F1 1 each), y-te and giao-duc (0 each).
    assert d["accuracy"] == 0.75
    assert d["category_macro_f1"] == 0.6
    # khan 1/1 → F1 1; som P 1/2 R 1 → 2/3; thuong P 1 R 1/2 → 2/3.
    assert d["urgency_macro_f1"] == pytest.approx(7 / 9, abs=1e-4)
    assert d["khan_recall"] == 1.0
    assert d["urgency_accuracy"] == 0.75
    assert d["confusions"] == [{"gold": "y-te", "predicted": "giao-duc", "count": 1}]
    text = run_cli(None, "classify", "--eval", str(path), env=NO_CONFIG)
    assert "category macro-F1   0.600" in text.stdout
    assert "y-te → giao-duc" in text.stdout


def test_eval_bad_csv_names_the_line(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "bad.csv", [
        ("Mất điện", "dien-nuoc-thoat-nuoc", "som"),
        ("Ổ gà", "duong-sa", "thuong"),
    ])
    r = run_cli(None, "classify", "--eval", str(path), env=NO_CONFIG)
    assert r.returncode == 2
    assert f"{path} line 3: unknown category 'duong-sa'" in r.stderr
    (tmp_path / "nocol.csv").write_text("text,label\nabc,def\n", encoding="utf-8")
    r = run_cli(None, "classify", "--eval", str(tmp_path / "nocol.csv"), env=NO_CONFIG)
    assert r.returncode == 2 and "line 1: no 'category' column" in r.stderr


def test_eval_uses_categories_option(tmp_path: Path) -> None:
    lex = tmp_path / "cat.toml"
    lex.write_text(_minimal_lexicon(), encoding="utf-8")
    path = _write_csv(tmp_path / "s.csv", [("có từ khóa y-te", "y-te", "thuong")])
    r = run_cli(None, "classify", "--eval", str(path), "--categories", str(lex),
                "--format", "json", env=NO_CONFIG)
    assert json.loads(r.stdout)["accuracy"] == 1.0


def test_acceptance_on_the_shared_dev_sets(shared_dir: Path) -> None:
    def run(name: str, *extra: str) -> dict:
        r = run_cli(None, "classify", "--eval", str(shared_dir / "eval" / name),
                    "--format", "json", *extra, env=NO_CONFIG)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    dev, dev_plain = run("dev.csv"), run("dev.csv", "--strip-accents")
    urg, urg_plain = run("dev-urgency.csv"), run("dev-urgency.csv", "--strip-accents")
    assert dev["category_macro_f1"] >= 0.75
    assert urg["urgency_macro_f1"] >= 0.75
    assert urg["khan_recall"] >= 0.85
    assert dev_plain["category_macro_f1"] >= dev["category_macro_f1"] - 0.05
    assert urg_plain["urgency_macro_f1"] >= urg["urgency_macro_f1"] - 0.05
    assert urg_plain["khan_recall"] >= urg["khan_recall"] - 0.05


def test_evaluate_scores_by_hand() -> None:
    s = evaluate.per_label(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert [(x.precision, x.recall) for x in s] == [(1.0, 0.5), (0.5, 1.0)]
    assert evaluate.macro_f1(s) == pytest.approx(2 / 3)


# ----- staff corrections ---------------------------------------------------------------


def _stored(make_config, body: str) -> tuple[Path, str]:
    config_path = make_config()
    cfg = config.load(config_path)
    ctx = pipeline.Context.load(cfg)
    store = Store.open(cfg.store.path)
    raw = mf.citizen_mail("gmail-android", subject="Góp ý", body=body)
    out = pipeline.process(
        RawMail(folder="INBOX", uidvalidity=1, uid=1, data=raw,
                received=dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC), size=len(raw)),
        store, ctx,
    )
    store.close()
    assert not out.quarantined
    return config_path, out.ref


def test_a_correction_overrides_the_classifier(make_config, tmp_path: Path) -> None:
    config_path, ref = _stored(make_config, "Đèn đường ở ngõ 7 bị hỏng cả tuần nay, tối om.")
    listed = run_cli(config_path, "list", "--format", "json", check=True).stdout.splitlines()
    before = next(x for x in map(json.loads, listed) if x["ref"] == ref)
    assert (before["category"], before["urgency"]) == ("giao-thong", "som")
    r = run_cli(config_path, "label", ref, "--category", "dien-nuoc-thoat-nuoc",
                "--urgency", "khan")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in
            run_cli(config_path, "list", "--format", "json", check=True).stdout.splitlines()]
    row = next(x for x in rows if x["ref"] == ref)
    assert (row["category"], row["urgency"]) == ("dien-nuoc-thoat-nuoc", "khan")
    shown = json.loads(run_cli(config_path, "show", ref, "--format", "json", check=True).stdout)
    assert shown["category"] == "dien-nuoc-thoat-nuoc"

    out = tmp_path / "labelled.csv"
    r = run_cli(config_path, "export", "--labelled", str(out))
    assert r.returncode == 0, r.stderr
    with open(out, encoding="utf-8", newline="") as f:
        exported = list(csv.DictReader(f))
    assert exported[0]["ref"] == ref
    assert (exported[0]["category"], exported[0]["urgency"], exported[0]["corrected"]) == (
        "dien-nuoc-thoat-nuoc", "khan", "1")
    assert "Đèn đường ở ngõ 7" in exported[0]["text"]
    assert mf.PLANTED.address not in out.read_text(encoding="utf-8")
    # The export is itself an eval file.
    r = run_cli(None, "classify", "--eval", str(out), "--format", "json", env=NO_CONFIG)
    assert r.returncode == 0, r.stderr


def test_label_rejects_unknown_refs_and_slugs(make_config) -> None:
    config_path, ref = _stored(make_config, "Rác chất đống ở đầu ngõ.")
    r = run_cli(config_path, "label", "HT-ZZZZZ", "--category", "y-te")
    assert r.returncode == 2 and "HT-ZZZZZ" in r.stderr
    r = run_cli(config_path, "label", ref, "--category", "nha-o")
    assert r.returncode != 0


# ----- speed ---------------------------------------------------------------------------


def test_classification_is_fast(lexicon: classify.Lexicon) -> None:
    import time

    texts = ["Đèn đường ở ngõ 12 hỏng cả tuần nay, tối đi rất nguy hiểm. " * 8] * 200
    start = time.perf_counter()
    for t in texts:
        classify.classify_text(t, lexicon)
    per_message = (time.perf_counter() - start) / len(texts)
    assert per_message < 0.005  # the benchmark's target is 2 ms; leave room for slow CI


def test_an_urgency_phrase_keeps_the_topic_inside_it(lexicon: classify.Lexicon) -> None:
    # "đang đánh nhau" is one khan phrase; "đánh nhau" inside it still names the topic.
    r = k("Hàng chục người đang đánh nhau ở sân bóng.", lexicon)
    assert (r.category, r.urgency) == ("an-ninh-trat-tu", "khan")


def test_classify_reads_stdin_without_a_config() -> None:
    r = run_cli(None, "classify", "--format", "json", input="Cống tắc, nước thải tràn ra ngõ.",
                env=NO_CONFIG)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["category"], d["urgency"]) == ("dien-nuoc-thoat-nuoc", "som")
    assert "cống tắc" in d["cues"]


def test_unaccented_words_inside_an_accented_line(lexicon: classify.Lexicon) -> None:
    r = k("Khu phố tôi bi mat dien tu sang, đề nghị điện lực kiểm tra giúp.", lexicon)
    assert (r.category, r.urgency) == ("dien-nuoc-thoat-nuoc", "som")
    assert "mat dien" in r.cues


def test_a_negator_does_not_reach_past_a_comma(lexicon: classify.Lexicon) -> None:
    assert k("Ngõ này không có đèn đường, tối om.", lexicon).urgency == "som"
    assert k("Tối qua mưa to nhưng không bị ngập.", lexicon).urgency == "thuong"


def test_weight_too_large_and_bad_setting_name_the_line(tmp_path: Path) -> None:
    text = _minimal_lexicon().replace('"từ khóa y-te" = 2', '"từ khóa y-te" = 30')
    msg = _load_error(tmp_path, text)
    assert f"line {_line_of(text, 'từ khóa y-te')}: weight must be at most 10" in msg
    text = _minimal_lexicon().replace("min_score = 1", "min_score = -2")
    msg = _load_error(tmp_path, text)
    assert f"line {_line_of(text, 'min_score')}: min_score must be a number" in msg


def test_no_flags_on_real_comments_with_or_without_accents(shared_dir: Path,
                                                            lexicon: classify.Lexicon) -> None:
    # Every dev text is a genuine comment or petition: any flag is a false alarm.
    flagged = []
    for name in ("dev.csv", "dev-urgency.csv"):
        for ex in evaluate.read_csv(shared_dir / "eval" / name):
            for text in (ex.text, classify.strip_accents(ex.text)):
                if k(text, lexicon).flags:
                    flagged.append(text[:60])
    assert flagged == []


def test_anonymiser_marks_are_not_content(lexicon: classify.Lexicon) -> None:
    # A QR mail with nothing but the default subject and a redacted signature.
    r = k("Góp ý\n\nTest\n\n[tên]\n[số điện thoại] [số giấy tờ]", lexicon)
    assert "empty" in r.flags and r.category == "khac-gop-y"
    r = k("Góp ý\n\nRác chất đống ở đầu ngõ 4.\n\n[tên] [số điện thoại]", lexicon)
    assert r.flags == frozenset() and r.category == "moi-truong"
