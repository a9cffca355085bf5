"""The seller's catalogue and the marketplaces' geography: products, sizes, warehouses, regions.

The seller makes TV brackets, educational cards and packaging bags (the alias groups of the design
doc: Кронштейны, Карточки, Пакеты 8/5/2). Some Ozon offer_ids equal WB supplierArticles, as when a
seller uses one article everywhere, so SKU aliases across marketplaces have something to join.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from collector.sandbox.config import SandboxConfig
from collector.sandbox.randomness import ean13, popularity_weights, rng_for, stable_int, zipf_weights


@dataclass(frozen=True, slots=True)
class Family:
    prefix: str
    title: str
    variants: tuple[str, ...]
    subject: str
    category: str
    brand: str
    sizes: tuple[str, ...]
    price_rub: tuple[int, int]
    commission_percent: int


FAMILIES = (
    Family("KR", "Кронштейн для телевизора", ("наклонный", "поворотный", "фиксированный", "потолочный"),
           "Кронштейны для ТВ", "Электроника", "HomeMount", ("26-55", "32-70", "43-90", "50-100"),
           (890, 4990), 19),
    Family("KART", "Развивающие карточки", ("Животные", "Цифры", "Буквы", "Цвета", "Транспорт"),
           "Карточки развивающие", "Детям", "УмныйМалыш", ("A6", "A5", "A4"), (250, 790), 21),
    Family("PAK8", "Пакет упаковочный 8 мкм", ("zip-lock", "с вырубной ручкой", "с клеевым клапаном"),
           "Пакеты упаковочные", "Хозяйственные товары", "PackPro", ("15x20", "20x30", "30x40", "40x50"),
           (190, 690), 17),
    Family("PAK5", "Пакет упаковочный 5 мкм", ("zip-lock", "майка", "с клеевым клапаном"),
           "Пакеты упаковочные", "Хозяйственные товары", "PackPro", ("10x15", "15x20", "20x30"),
           (150, 490), 17),
    Family("PAK2", "Пакет фасовочный 2 мкм", ("в рулоне", "в пачке"),
           "Пакеты фасовочные", "Хозяйственные товары", "PackPro", ("24x37", "30x40"), (120, 390), 17),
)

# WB warehouses orders and sales rows name (before and after the 15.08.2026 aggregation).
WB_WAREHOUSES = (
    ("Коледино", 8), ("Подольск", 6), ("Электросталь", 5), ("Склад WB РФ", 5), ("Казань", 4),
    ("Краснодар", 3), ("Тула", 3), ("Невинномысск", 2), ("Санкт-Петербург Уткина Заводь", 3),
    ("Екатеринбург - Испытателей 14г", 2), ("Новосибирск", 2), ("Минск", 1),
)

# (countryName, oblastOkrugName, regionName), weight
WB_REGIONS = (
    (("Россия", "Центральный федеральный округ", "Москва"), 10),
    (("Россия", "Центральный федеральный округ", "Московская"), 8),
    (("Россия", "Северо-Западный федеральный округ", "Санкт-Петербург"), 5),
    (("Россия", "Приволжский федеральный округ", "Республика Татарстан"), 3),
    (("Россия", "Приволжский федеральный округ", "Нижегородская"), 2),
    (("Россия", "Южный федеральный округ", "Краснодарский край"), 3),
    (("Россия", "Уральский федеральный округ", "Свердловская"), 2),
    (("Россия", "Сибирский федеральный округ", "Новосибирская"), 2),
    (("Россия", "Северо-Кавказский федеральный округ", "Ставропольский край"), 1),
    (("Беларусь", "", "Минская"), 1),
    (("Казахстан", "", "Алматы"), 1),
)

# Ozon FBO warehouses: name, cluster, city (for addresses and delivery clusters).
OZON_WAREHOUSES = (
    ("ХОРУГВИНО_РФЦ", "Москва, МО и Дальние регионы", "Хоругвино"),
    ("НОГИНСК_РФЦ", "Москва, МО и Дальние регионы", "Ногинск"),
    ("ПУШКИНО_1_РФЦ", "Москва, МО и Дальние регионы", "Пушкино"),
    ("ПЕТРОВСКОЕ_РФЦ", "Москва, МО и Дальние регионы", "Петровское"),
    ("ГРИВНО_РФЦ", "Москва, МО и Дальние регионы", "Гривно"),
    ("ЖУКОВСКИЙ_РФЦ", "Москва, МО и Дальние регионы", "Жуковский"),
    ("СОФЬИНО_РФЦ", "Москва, МО и Дальние регионы", "Софьино"),
    ("Казань_РФЦ", "Казань", "Казань"),
    ("САНКТ_ПЕТЕРБУРГ_РФЦ", "Санкт-Петербург и СЗО", "Санкт-Петербург"),
    ("ТВЕРЬ_РФЦ", "Тверь", "Тверь"),
    ("ЕКАТЕРИНБУРГ_РФЦ_НОВЫЙ", "Урал", "Екатеринбург"),
    ("ЧЕЛЯБИНСК_РФЦ", "Урал", "Челябинск"),
    ("НОВОСИБИРСК_РФЦ_НОВЫЙ", "Сибирь", "Новосибирск"),
    ("ОМСК_РФЦ", "Омск", "Омск"),
    ("РОСТОВ-НА-ДОНУ_РФЦ", "Ростов", "Ростов-на-Дону"),
    ("КРАСНОДАР_РФЦ", "Юг", "Краснодар"),
    ("ВОЛГОГРАД_РФЦ", "Юг", "Волгоград"),
    ("САМАРА_РФЦ", "Самара", "Самара"),
    ("САРАТОВ_РФЦ", "Саратов", "Саратов"),
    ("ВОРОНЕЖ_2_РФЦ", "Воронеж", "Воронеж"),
    ("НИЖНИЙ_НОВГОРОД_РФЦ", "Нижний Новгород", "Нижний Новгород"),
    ("УФА_РФЦ", "Уфа", "Уфа"),
    ("ПЕРМЬ_РФЦ", "Пермь", "Пермь"),
    ("ТЮМЕНЬ_РФЦ", "Тюмень", "Тюмень"),
    ("КРАСНОЯРСК_РФЦ", "Красноярск", "Красноярск"),
    ("ХАБАРОВСК_РФЦ", "Дальний Восток", "Хабаровск"),
    ("ЯРОСЛАВЛЬ_РФЦ", "Ярославль", "Ярославль"),
    ("ИЖЕВСК_РФЦ", "Ижевск", "Ижевск"),
    ("КАЛИНИНГРАД_МРФЦ", "Калининград", "Калининград"),
    ("МИНСК_МПСЦ", "Беларусь", "Минск"),
)
OZON_CLUSTERS = tuple(dict.fromkeys(cluster for _, cluster, _ in OZON_WAREHOUSES))

# Where Ozon buyers are: city (as analytics_data.city writes it) and their cluster.
OZON_BUYER_CITIES = (
    ("Москва", "Москва, МО и Дальние регионы", 10), ("Санкт-Петербург", "Санкт-Петербург и СЗО", 5),
    ("Казань", "Казань", 2), ("Екатеринбург", "Урал", 2), ("Новосибирск", "Сибирь", 2),
    ("Краснодар", "Юг", 2), ("Самара", "Самара", 1), ("Ростов-на-Дону", "Ростов", 1),
    ("Нижний Новгород", "Нижний Новгород", 1), ("", "Москва, МО и Дальние регионы", 1),
)


@dataclass(frozen=True, slots=True)
class WbSize:
    chrt_id: int
    tech_size: str
    barcode: str
    weight: float  # share of the cabinet's orders


@dataclass(frozen=True, slots=True)
class WbProduct:
    nm_id: int
    article: str
    name: str
    family: Family
    price_kop: int  # totalPrice
    discount_percent: int
    sizes: tuple[WbSize, ...]
    restock_phase: int  # restocks happen on days where (day + phase) % restock_every_days == 0
    income_base: int  # incomeID of the supply of restock cycle c is income_base + c


@dataclass(frozen=True, slots=True)
class OzonProduct:
    product_id: int
    sku: int
    offer_id: str
    name: str
    barcode: str
    family: Family
    price_kop: int
    old_price_kop: int
    weight: float  # share of the store's posting lines; 0 for archived products
    archived: bool
    restock_phase: int


@dataclass(frozen=True, slots=True)
class OzonWarehouse:
    warehouse_id: int
    name: str
    cluster_id: int
    cluster_name: str
    macrolocal_cluster_id: int
    city: str
    weight: float  # share of the store's postings shipped from here


def _product_name(rng: random.Random, family: Family, size: str | None = None) -> str:
    name = f"{family.title} {rng.choice(family.variants)}"
    return f"{name}, {size}" if size else name


def _price_kop(rng: random.Random, family: Family) -> int:
    low, high = family.price_rub
    return rng.randrange(low, high + 1) * 100


def _wb_article(family: Family, index: int, cabinet: int) -> str:
    article = f"{family.prefix}-{101 + index}"
    return article if cabinet == 1 else f"{article}/{cabinet}"


def wb_catalog(config: SandboxConfig, cabinet: int) -> tuple[WbProduct, ...]:
    """The products of WB cabinet `cabinet` (1-based), families taken in turn."""
    rng = rng_for(config.seed, "wb", cabinet, "catalog")
    count = config.wb_products
    nm_ids = rng.sample(range(100_000_000, 500_000_000), count)
    product_weights = popularity_weights(rng, count)
    products = []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)]
        size_count = rng.randint(*config.wb_sizes_per_product)
        tech_sizes = ["0"] if size_count == 1 else sorted(
            rng.sample(family.sizes, min(size_count, len(family.sizes))), key=family.sizes.index)
        size_shares = [rng.uniform(0.5, 1.5) for _ in tech_sizes]
        share_total = sum(size_shares)
        sizes = tuple(
            WbSize(chrt_id=rng.randrange(10_000_000, 999_999_999), tech_size=tech_size,
                   barcode=ean13(rng), weight=product_weights[index] * share / share_total)
            for tech_size, share in zip(tech_sizes, size_shares))
        products.append(WbProduct(
            nm_id=nm_ids[index], article=_wb_article(family, index // len(FAMILIES), cabinet),
            name=_product_name(rng, family), family=family, price_kop=_price_kop(rng, family),
            discount_percent=rng.choice((0, 10, 15, 18, 25, 30, 40)), sizes=sizes,
            restock_phase=rng.randrange(config.restock_every_days),
            income_base=rng.randrange(10_000_000, 60_000_000)))
    return tuple(products)


def ozon_catalog(config: SandboxConfig, store: int,
                 wb_products: tuple[WbProduct, ...]) -> tuple[OzonProduct, ...]:
    """The products of Ozon store `store` (1-based): active ones first, then archived.

    The first `ozon_shared_articles` of the active offers reuse WB articles of cabinet 1 (each
    store starting further along the WB catalogue); the rest are Ozon-only articles.
    """
    rng = rng_for(config.seed, "ozon", store, "catalog")
    active, archived = config.ozon_products, config.ozon_archived_products
    total = active + archived
    skus = rng.sample(range(1_000_000_000, 4_000_000_000), total)
    product_ids = rng.sample(range(100_000_000, 1_000_000_000), total)
    weights = popularity_weights(rng, active) + [0.0] * archived
    shared = min(round(active * config.ozon_shared_articles), len(wb_products))
    products = []
    for index in range(total):
        if index < shared:
            wb_product = wb_products[(index + 2 * (store - 1)) % len(wb_products)]
            family, offer_id, name = wb_product.family, wb_product.article, wb_product.name
        else:
            family = FAMILIES[index % len(FAMILIES)]
            offer_id = f"OZ{store}-{family.prefix}-{index + 1:03d}"
            name = _product_name(rng, family, rng.choice(family.sizes))
        price = _price_kop(rng, family) + rng.choice((0, 0, 0, 50, 90))
        products.append(OzonProduct(
            product_id=product_ids[index], sku=skus[index], offer_id=offer_id, name=name,
            barcode=ean13(rng, prefix="46"), family=family, price_kop=price,
            old_price_kop=price * rng.choice((100, 120, 140, 160)) // 100, weight=weights[index],
            archived=index >= active, restock_phase=rng.randrange(config.restock_every_days)))
    return tuple(products)


def ozon_warehouse_set(config: SandboxConfig, store: int) -> tuple[OzonWarehouse, ...]:
    """The FBO warehouses a store keeps stock in; the first ones get most of the postings."""
    rng = rng_for(config.seed, "ozon", store, "warehouses")
    count = rng.randint(*config.ozon_warehouses)
    picked = rng.sample(OZON_WAREHOUSES, min(count, len(OZON_WAREHOUSES)))
    for extra in range(count - len(picked)):  # a seller bigger than the list ships from second sites
        name, cluster, city = OZON_WAREHOUSES[extra % len(OZON_WAREHOUSES)]
        picked.append((f"{name}_{2 + extra // len(OZON_WAREHOUSES)}", cluster, city))
    return tuple(
        OzonWarehouse(
            warehouse_id=10**15 + stable_int("ozon-warehouse", name) % (9 * 10**14), name=name,
            cluster_id=OZON_CLUSTERS.index(cluster) + 1, cluster_name=cluster,
            macrolocal_cluster_id=100 + OZON_CLUSTERS.index(cluster), city=city, weight=weight)
        for (name, cluster, city), weight in zip(picked, zipf_weights(count)))
