"""Sample documents for the feed and sitemap tests (URLs only; images are generated)."""

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Example board</title>
  <link>{base}/board/</link>
  <item>
    <title>Third post</title>
    <link>{base}/board/3</link>
    <guid>post-3</guid>
    <pubDate>Sat, 03 Jan 2026 10:00:00 GMT</pubDate>
    <dc:creator>poster3</dc:creator>
    <content:encoded><![CDATA[<p>look <img src="img/3a.png" alt="three a">
      <img srcset="img/3b-small.png 320w, img/3b-large.png 1280w, img/3b-mid.png 640w"
           src="img/3b-small.png"></p>]]></content:encoded>
  </item>
  <item>
    <title>Second post</title>
    <link>{base}/board/2</link>
    <guid isPermaLink="false">post-2</guid>
    <pubDate>Fri, 02 Jan 2026 10:00:00 GMT</pubDate>
    <media:content url="{base}/media/2-full.jpg" medium="image">
      <media:description>full size two</media:description>
    </media:content>
    <media:thumbnail url="{base}/media/2-thumb.jpg"/>
  </item>
  <item>
    <title>First post</title>
    <link>{base}/board/1</link>
    <guid>post-1</guid>
    <pubDate>Thu, 01 Jan 2026 10:00:00 GMT</pubDate>
    <author>one@example.invalid (poster1)</author>
    <enclosure url="{base}/media/1.png" type="image/png" length="100"/>
    <enclosure url="{base}/media/1.mp3" type="audio/mpeg" length="100"/>
    <media:thumbnail url="{base}/media/1-thumb.png"/>
  </item>
  <item>
    <title>Thumbnail only</title>
    <link>{base}/board/0</link>
    <guid>post-0</guid>
    <pubDate>Wed, 31 Dec 2025 10:00:00 GMT</pubDate>
    <media:group><media:thumbnail url="/media/0-thumb.png"/></media:group>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="{base}/blog/">
  <title>Atom blog</title>
  <link rel="alternate" href="{base}/blog/"/>
  <id>urn:example:blog</id>
  <updated>2026-01-05T00:00:00Z</updated>
  <entry>
    <title>Entry B</title>
    <id>urn:example:b</id>
    <link rel="alternate" href="posts/b.html"/>
    <link rel="enclosure" type="image/jpeg" href="/files/b.jpg"/>
    <published>2026-01-05T00:00:00Z</published>
    <author><name>alice</name></author>
  </entry>
  <entry>
    <title>Entry A</title>
    <id>urn:example:a</id>
    <link href="posts/a.html"/>
    <updated>2026-01-04T12:00:00+02:00</updated>
    <content type="html">&lt;p&gt;&lt;img src="pics/a.png" alt="pic a"/&gt;&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Entry X</title>
    <id>urn:example:x</id>
    <link href="posts/x.html"/>
    <updated>2026-01-03T00:00:00Z</updated>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><img src="pics/x.gif"/>
    </div></content>
  </entry>
</feed>
"""

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rss version="2.0"><channel><title>&lol3;</title></channel></rss>
"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&xxe;</title></channel></rss>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://evil.test/x.dtd">
<rss version="2.0"><channel><title>t</title></channel></rss>
"""


def rss_item(n: int, base: str) -> str:
    return (f"<item><title>Post {n}</title><link>{base}/p/{n}</link><guid>g{n}</guid>"
            f"<pubDate>Thu, {n:02d} Jan 2026 10:00:00 GMT</pubDate>"
            f'<enclosure url="{base}/i/{n}.png" type="image/png"/></item>')


def rss_with(items: list[int], base: str) -> str:
    body = "".join(rss_item(n, base) for n in sorted(items, reverse=True))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"<link>{base}/</link>{body}</channel></rss>")
