from __future__ import annotations

from connectors.htmlimages import best_from_srcset, feed_links_in_html, images_in_html, parse_srcset


def test_srcset():
    assert best_from_srcset("a.jpg 320w, b.jpg 1280w, c.jpg 640w") == "b.jpg"
    assert best_from_srcset("a.jpg, b.jpg 2x, c.jpg 1.5x") == "b.jpg"
    assert best_from_srcset("https://cdn.test/w_100,h_100/x.jpg 100w, "
                            "https://cdn.test/w_900,h_900/x.jpg 900w") == \
        "https://cdn.test/w_900,h_900/x.jpg"
    assert best_from_srcset("") is None
    assert parse_srcset("a.jpg 1x,b.jpg 2x") == [("a.jpg", None, 1.0), ("b.jpg", None, 2.0)]


def test_images_in_a_page():
    html = b"""<html><head><base href="https://site.test/gallery/">
      <meta property="og:image" content="/og.jpg">
      <link rel="alternate" type="application/rss+xml" href="/feed.xml"></head><body>
      <img src="small.jpg" srcset="small.jpg 300w, big.jpg 1200w" alt=" A  picture ">
      <img src="data:image/png;base64,AAAA" data-src="lazy.png">
      <picture><source srcset="p-1x.webp 1x, p-2x.webp 2x"><img src="p.jpg"></picture>
      <a href="full/1.jpeg"><img src="thumb/1.jpg"></a>
      <img src="javascript:alert(1)"><img src="big.jpg">
      <video poster="poster.jpg" src="clip.mp4"></video>
    </body></html>"""
    found = images_in_html(html, "https://site.test/page")
    assert [(f.url, f.media_type) for f in found] == [
        ("https://site.test/og.jpg", "image"),
        ("https://site.test/gallery/big.jpg", "image"),
        ("https://site.test/gallery/lazy.png", "image"),
        ("https://site.test/gallery/p-2x.webp", "image"),
        ("https://site.test/gallery/p.jpg", "image"),
        ("https://site.test/gallery/full/1.jpeg", "image"),
        ("https://site.test/gallery/thumb/1.jpg", "image"),
        ("https://site.test/gallery/clip.mp4", "video"),
        ("https://site.test/gallery/poster.jpg", "image"),
    ]
    assert found[1].alt == "A picture"
    assert feed_links_in_html(html, "https://site.test/page") == ["https://site.test/feed.xml"]


def test_malformed_declarations_cannot_hide_images():
    for junk in ("<![0", "<!x", "<![CDATA[", "<!"):
        html = f"{junk}<p><img src='/hidden.jpg'></p>"
        assert [f.url for f in images_in_html(html, "https://site.test/")] == [
            "https://site.test/hidden.jpg"], junk
