"""A dozen sample citizen messages for the demo, written for this project.

They imitate what phones send (plus-addressed QR mail, a photo with camera
EXIF, signature lines, typed phone and ID numbers, one spam) so the demo
shows the whole path: sealing, redaction, location, classification.
"""

from __future__ import annotations

import datetime as dt
import io
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

DOMAIN = "phuong.example.vn"

# (sender name, sender address, location tag or None, subject, body)
SAMPLES: list[tuple[str, str, str | None, str, str]] = [
    ("Trần Thị Hoa", "hoa.tran@gmail.example", "tdp1", "Đèn đường hỏng",
     "Kính gửi Ủy ban MTTQ phường,\n\nĐèn chiếu sáng ở đầu ngõ 14 phố Hàng Bè đã tắt gần hai "
     "tuần nay. Buổi tối các cháu đi học thêm về phải đi trong bóng tối, rất nguy hiểm. "
     "Mong phường báo điện lực sửa sớm.\n\nCảm ơn ạ.\nTrần Thị Hoa\n\nĐược gửi từ iPhone của tôi"),
    ("Lê Văn Minh", "minhlv1978@yahoo.example", "tdp3", "Cháy dây điện",
     "Dây điện trên cột trước nhà số 27 đang bốc cháy, tóe lửa xuống đường, người dân đang tránh. "
     "Đề nghị cắt điện khẩn cấp! Số điện thoại của tôi: 0912 345 678."),
    ("Phạm Quốc Bảo", "bao.pham@outlook.example", "nvh", "Rác thải ở bãi đất trống",
     "Bãi đất trống cạnh nhà văn hóa bị đổ trộm rác thải xây dựng và rác sinh hoạt, bốc mùi hôi "
     "thối, ruồi muỗi nhiều. Đề nghị phường cho thu dọn và đặt biển cấm đổ rác.\n\n"
     "Tải Outlook cho iOS"),
    ("Nguyễn Thị Lan", "lan.nguyen@gmail.example", "tdp1", "Hát karaoke đến khuya",
     "Nhà số 9 ngõ 5 tối nào cũng hát karaoke đến 12 giờ đêm, loa rất to, người già và trẻ nhỏ "
     "không ngủ được. Tổ dân phố đã nhắc nhở nhưng không có kết quả."),
    ("Hoàng Văn Tùng", "tung.hv@gmail.example", None, "[tdp3] Hỏi về thủ tục cấp lại CCCD",
     "Cho tôi hỏi thủ tục cấp đổi căn cước công dân khi bị mất thì cần mang giấy tờ gì, làm ở "
     "đâu? Số CCCD cũ của tôi là 001085012345."),
    ("Đỗ Thị Mai", "maido@gmail.example", "tdp1", "Nước sinh hoạt bị đục",
     "Từ thứ Hai đến nay nước máy ở khu tập thể bị đục, có mùi lạ, các hộ phải mua nước bình để "
     "nấu ăn. Đề nghị công ty cấp nước kiểm tra chất lượng nước."),
    ("Vũ Minh Đức", "duc.vu@samsung.example", "nvh", "Cảm ơn phường",
     "Tôi xin cảm ơn phường và tổ dân phố đã sửa xong con đường vào khu nhà văn hóa, giờ đi lại "
     "rất thuận tiện.\n\nĐã gửi từ Samsung Galaxy của tôi"),
    ("Bùi Thị Thu", "thu.bui@gmail.example", "tdp3", "Lấn chiếm vỉa hè",
     "Quán ăn ở số 40 bày bàn ghế kín vỉa hè, người đi bộ phải xuống lòng đường. Xin phường "
     "kiểm tra xử lý."),
    ("Ngô Văn Hải", "hai.ngo@gmail.example", "tdp1", "Ngập sau mưa",
     "Mỗi lần mưa to, ngõ 22 ngập sâu gần nửa mét vì cống thoát nước bị tắc. Nước tràn vào nhà "
     "dân, xe máy chết máy. Mong phường cho nạo vét cống."),
    ("Đặng Thị Hương", "huong.dang@gmail.example", None, "Trợ cấp người cao tuổi",
     "Mẹ tôi năm nay 80 tuổi nhưng chưa được nhận trợ cấp xã hội hằng tháng. Xin hướng dẫn hồ "
     "sơ cần nộp. Có thể liên hệ tôi qua email huong.dang@gmail.example."),
    ("Marketing Team", "promo@deals.example", None, "Khuyến mãi lớn - giảm giá 90%",
     "Click here to claim your prize! http://deals.example/a http://deals.example/b "
     "http://deals.example/c Limited offer, buy now!"),
    ("Trịnh Văn Nam", "nam.trinh@gmail.example", "tdp3", "Học thêm ở trường",
     "Cô giáo chủ nhiệm lớp 4A yêu cầu học sinh đi học thêm tại nhà cô, phụ huynh không muốn "
     "nhưng sợ con bị phân biệt. Mong phường và nhà trường xem xét."),
]


def _photo() -> bytes:
    """A small JPEG with camera EXIF and GPS, as a phone would attach."""
    from PIL import Image

    img = Image.new("RGB", (640, 480), (90, 140, 200))
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 15 Pro"  # Model
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def messages(mailbox_local: str = "hopthu") -> list[bytes]:
    out = []
    start = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    for n, (name, addr, tag, subject, body) in enumerate(SAMPLES):
        msg = EmailMessage()
        msg["From"] = f"{name} <{addr}>"
        to_local = f"{mailbox_local}+{tag}" if tag else mailbox_local
        msg["To"] = f"{to_local}@{DOMAIN}"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(start + dt.timedelta(hours=n * 2))
        msg["Message-ID"] = make_msgid(domain=addr.split("@")[1])
        msg["Received"] = f"from [10.20.{n}.7] by mx.{addr.split('@')[1]}"
        msg["X-Mailer"] = "iPhone Mail (21A329)"
        msg.set_content(body)
        if n == 2:
            msg.add_attachment(_photo(), maintype="image", subtype="jpeg", filename="IMG_4821.JPG")
        out.append(msg.as_bytes())
    return out
