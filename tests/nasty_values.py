"""Secrets shaped to break quoting: for URIs, env files and messages that must hide them."""

NASTY_PASSWORDS = [
    "plain",
    "p@ss:w/rd?#frag",
    "100%sure%41",
    'it\'s "quoted"',
    "$HOME ${USER} `id` $(id)",
    "back\\slash\\",
    "  spaces at both ends  ",
    "#not-a-comment ;nor this",
    "ünï©ødé ✓",
    "'\"\\$`%#; =@:/",
]
