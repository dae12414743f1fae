"""songrec: playlist continuation on the Spotify Million Playlist Dataset format."""

__version__ = "0.1.0"
