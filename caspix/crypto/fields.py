"""Model fields that store only ciphertext, and blind indexes to search them.

``EncryptedTextField`` and ``EncryptedDateField`` keep an AES-256-GCM envelope
(:mod:`caspix.crypto.envelope`) bound to the table, the column and the row. A value read from the
database stays sealed until the attribute is read; what comes out is a :class:`Sensitive` value
whose ``repr`` is redacted, so tracebacks, debug pages and ``repr`` of containers never show it.

The row is named by the field given as ``bind`` (the primary key by default), which must have its
value before the insert: a UUID primary key with a default does (a system check enforces it).
Writes go through ``save()`` or ``bulk_create()``, which know the row: ``QuerySet.update()``
cannot seal a value for each row and is refused, as is filtering on a ciphertext (use the blind
index). ``dumpdata`` refuses too: backups are ``manage.py backup``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.lookups import In
from django.db.models.query_utils import DeferredAttribute

from caspix.crypto import blind
from caspix.crypto.envelope import Sealed, column_aad_prefix, location, open_envelope, seal


class Sensitive(str):
    """Decrypted text: a ``str`` in every way except that its ``repr`` is redacted."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'«redacted»'"


class SensitiveDate(datetime.date):
    """A decrypted date whose ``repr`` is redacted."""

    def __repr__(self) -> str:
        return "SensitiveDate(«redacted»)"


class SealedAttribute(DeferredAttribute):
    """Opens the envelope on first read of the attribute, never before."""

    field: EncryptedField

    def __get__(self, instance: models.Model | None, cls: type | None = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            value = self.field.decode(open_envelope(value.envelope, self.field.location(instance)))
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class EncryptedField(models.Field):  # type: ignore[type-arg]
    """Base of the encrypted fields: subclasses say how a value becomes bytes and back."""

    descriptor_class = SealedAttribute

    def __init__(self, *args: Any, bind: str = "pk", **kwargs: Any) -> None:
        self.bind = bind
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.bind != "pk":
            kwargs["bind"] = self.bind
        return name, path, args, kwargs

    def get_internal_type(self) -> str:
        return "BinaryField"

    # how subclasses turn values into bytes
    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, raw: bytes) -> Any:
        raise NotImplementedError

    def location(self, instance: models.Model) -> bytes:
        """The associated data binding this field of ``instance``'s row (made once per instance)."""
        row = instance.pk if self.bind == "pk" else getattr(instance, self.bind)
        if row is None:
            raise ValueError(f"{self.model.__name__}.{self.name} is bound to {self.bind}, which has no value yet")
        made: dict[str, tuple[Any, bytes]] = instance._state.__dict__.setdefault("crypto_locations", {})
        hit = made.get(self.attname)
        if hit is not None and hit[0] is row:
            return hit[1]
        prefix = self.__dict__.get("_aad_prefix")
        if prefix is None:
            prefix = self.__dict__["_aad_prefix"] = column_aad_prefix(self.model._meta.db_table, self.column)
        where = location(self.model._meta.db_table, self.column, row, column_prefix=prefix)
        made[self.attname] = (row, where)
        return where

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Sealed | None:
        return None if value is None else Sealed(bytes(value))

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = model_instance.__dict__.get(self.attname)
        if value is None or isinstance(value, Sealed):
            return value
        return Sealed(seal(self.encode(self.to_python(value)), self.location(model_instance)))

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> Any:
        if value is None:
            return None
        if isinstance(value, Sealed):
            return value.envelope
        raise TypeError(
            f"{self.model.__name__}.{self.name} is encrypted: set it on the instance and save() it, "
            "and search it through its blind index"
        )

    def value_to_string(self, obj: models.Model) -> str:
        raise TypeError(f"{self.model.__name__}.{self.name} is encrypted and is not serialised: use manage.py backup")


class EncryptedTextField(EncryptedField):
    """Text, encrypted; ``max_length`` (optional) limits the plaintext."""

    def __init__(self, *args: Any, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_length = max_length
        if max_length is not None:
            self.validators.append(MaxLengthValidator(max_length))

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.max_length is not None:
            kwargs["max_length"] = self.max_length
        return name, path, args, kwargs

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, Sealed):
            return value
        return Sensitive(value)

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, raw: bytes) -> Sensitive:
        return Sensitive(raw.decode("utf-8"))

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        kwargs.setdefault("max_length", self.max_length)
        return super().formfield(
            form_class=form_class or forms.CharField, choices_form_class=choices_form_class, **kwargs
        )


class EncryptedBinaryField(EncryptedField):
    """Bytes (an evidence file), kept sealed like the other encrypted fields."""

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, (bytes, Sealed)):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        raise ValidationError("expected bytes")

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, raw: bytes) -> bytes:
        return raw


class EncryptedDateField(EncryptedField):
    """A date (a date of birth, say), encrypted."""

    empty_strings_allowed = False

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, Sealed | SensitiveDate):
            return value
        if isinstance(value, datetime.datetime):
            raise TypeError(f"{self.model.__name__}.{self.name} takes a date, not a datetime")
        if isinstance(value, datetime.date):
            return SensitiveDate(value.year, value.month, value.day)
        if isinstance(value, str):
            parsed = datetime.date.fromisoformat(value)
            return SensitiveDate(parsed.year, parsed.month, parsed.day)
        raise TypeError(f"{self.model.__name__}.{self.name} takes a date")

    def encode(self, value: datetime.date) -> bytes:
        return value.isoformat().encode("ascii")

    def decode(self, raw: bytes) -> SensitiveDate:
        parsed = datetime.date.fromisoformat(raw.decode("ascii"))
        return SensitiveDate(parsed.year, parsed.month, parsed.day)

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        return super().formfield(
            form_class=form_class or forms.DateField, choices_form_class=choices_form_class, **kwargs
        )


class BlindIndexField(models.CharField):  # type: ignore[type-arg]
    """The blind index of another field (usually encrypted), kept in step by ``save()``.

    Search with ``Model.objects.filter(<field>__matches=value)``: the value is normalised and
    hashed under every live index key.
    """

    def __init__(self, *args: Any, kind: str, source: str, **kwargs: Any) -> None:
        self.kind = blind.Kind(kind)
        self.source = source
        kwargs.setdefault("max_length", blind.INDEX_LENGTH)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["kind"] = str(self.kind)
        kwargs["source"] = self.source
        for key, default in (("max_length", blind.INDEX_LENGTH), ("editable", False), ("db_index", True)):
            if kwargs.get(key, default) == default:
                kwargs.pop(key, None)
        for key in ("null", "blank"):
            if kwargs.get(key) is True:
                kwargs.pop(key)
            else:
                kwargs[key] = False
        return name, path, args, kwargs

    def source_attname(self) -> str:
        source = self.model._meta.get_field(self.source)
        if not isinstance(source, models.Field):
            raise TypeError(f"{self.model.__name__}.{self.name} indexes {self.source!r}, which is not a field")
        return source.attname

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        attname = self.source_attname()
        value = model_instance.__dict__.get(attname)
        if attname not in model_instance.__dict__ or isinstance(value, Sealed):
            return getattr(model_instance, self.attname)  # the source was deferred or not touched
        index = None if value in (None, "") else blind.digest(self.kind, str(value))
        setattr(model_instance, self.attname, index)
        return index


@BlindIndexField.register_lookup
class Matches(In):  # type: ignore[type-arg]
    """``<blind index>__matches=value``: rows whose source equals ``value`` after normalisation."""

    lookup_name = "matches"

    def get_prep_lookup(self) -> Any:
        field = self.lhs.output_field
        if not isinstance(field, BlindIndexField):
            raise TypeError("__matches works on blind-index fields only")
        if not isinstance(self.rhs, str):
            raise TypeError("__matches takes the value to search for, as text")
        self.rhs = blind.terms(field.kind, self.rhs)
        return super().get_prep_lookup()


class ProtectedModel(models.Model):
    """Base of every model with blind indexes: keeps each index in step with its source.

    ``save(update_fields=[…])`` that names a source saves its blind index too, and so does a save
    of an instance loaded with ``only()``/``defer()``; ``clean()`` reports a source value that
    cannot be normalised as a validation error on that field, before ``save()`` would refuse it.
    The system check ``crypto.E003`` requires this base for every model with a blind index.
    """

    class Meta:
        abstract = True

    def save(self, *args: Any, update_fields: Iterable[str] | None = None, **kwargs: Any) -> None:
        indexes = [f for f in self._meta.local_fields if isinstance(f, BlindIndexField)]
        deferred = self.get_deferred_fields()
        if indexes and update_fields is None and deferred and not self._state.adding:
            # what Django would save for a partly loaded instance (see Model.save)
            update_fields = {f.attname for f in self._meta.concrete_fields if not f.primary_key} - deferred
        if indexes and update_fields is not None:
            names = set(update_fields)
            for index in indexes:
                source = self._meta.get_field(index.source)
                if {index.source, getattr(source, "attname", index.source)} & names:
                    names.add(index.name)
            update_fields = names
        super().save(*args, update_fields=update_fields, **kwargs)

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        for index in (f for f in self._meta.local_fields if isinstance(f, BlindIndexField)):
            value = self.__dict__.get(index.source_attname())
            if value in (None, "") or isinstance(value, Sealed):
                continue
            try:
                blind.normalise(index.kind, str(value))
            except blind.NormalisationError as exc:
                errors[index.source] = str(exc)
        if errors:
            raise ValidationError(errors)
