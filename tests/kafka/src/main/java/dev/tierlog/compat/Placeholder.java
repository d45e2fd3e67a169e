package dev.tierlog.compat;
final class Placeholder {}
